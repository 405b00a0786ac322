"""The daily runner: papermill executes the numbered notebooks for a date, nbconvert renders them.

For one date D the order is:

1. ``01_data_quality``  — gate the raw file; on an ERROR finding the day stops here (exit 3).
2. ``02_transform``     — build D's partitions into a per-run *staging* warehouse.
3. ``04_monitoring``    — audit staging against the published history (skipped when the notebook
                           is absent; 01 and 02 are required).
4. publish              — swap the staged partitions into ``outputs/warehouse``, all tables of the
                           day or none (``puffy.publish``), as soon as monitoring has written its
                           status (its charts are drawn after); a transform that did not reconcile,
                           or outputs monitoring failed, are quarantined instead.

Before a run the runner completes (or undoes) a publish that a killed run left unfinished.

A kernel serves many notebooks (``KernelSession``), its namespace emptied before each one, so a run
pays for the kernel's start and the imports once, not three times a day. A backfill has two, which
take the days in turn (``_Lane``), each day waiting only for what it reads of the day before
(``_DayOrder``): D+1 is gated while D is transformed, and D+1's transform starts once D is
published, while D's monitoring notebook draws its charts. A kernel that dies is started again for
the next notebook. The kernels die with the runner, even when it is killed with SIGKILL
(``quiet_shutdown_kernel_manager``), so a killed run stops writing at once.

Every executed notebook is kept under ``outputs/runs/<D>/`` (emptied at the start of the day's run,
so nothing there is from an earlier run) with its HTML rendering. Each stage writes a status JSON
(``dq_report.json``, ``transform_status.json``, ``monitoring_report.json``; ``status``: pass | warn |
error) that the runner reads to decide what happens next: a cell that fails after the status was
written (a chart, a table) makes the stage a warning, not an error. ``run_summary.json`` records
what ran, for how long, why it stopped, and the day's alert (``puffy.monitoring.alert``: every
stopped or quarantined day, and a published day with new incidents, goes to the on-call webhook
and to ``runs/<D>/alert.json``).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

from puffy.dates import date_range
from puffy.errors import UserError
from puffy.params import REPO_ROOT
from puffy.run_index import write_index
from puffy.runlog import active_log
from puffy.stage import STATUS_FILES, Layout

# jsonschema (imported by nbformat, so by papermill and nbconvert) imports rfc3987_syntax when it is
# installed, only to check "iri" string formats, which no notebook schema uses; building that
# module's grammar costs ~1.2 CPU-s at the start of every run.
sys.modules.setdefault("rfc3987_syntax", None)

log = logging.getLogger("puffy.run")

# Exit codes, documented in the README. The worst one of a backfill wins.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_TRANSFORM = 4
EXIT_MONITORING = 5
EXIT_REPORT = 6
# Days that ran to their end: stopped or quarantined by a finding in the data, not by a failure.
EXITS_OF_FINDINGS = (EXIT_OK, EXIT_GATE, EXIT_MONITORING)


def _gate_parameters(layout: Layout, day: date) -> dict:
    return {"input_dir": str(layout.input_dir)}


def _published_warehouse(layout: Layout) -> dict:
    """``warehouse_dir`` for the notebooks that read the published history, when it is not the
    default ``<outputs_dir>/warehouse`` (a URI is passed as written: ``str`` of a ``Location``)."""
    return {} if layout.warehouse_dir is None else {"warehouse_dir": str(layout.warehouse_dir)}


def _transform_parameters(layout: Layout, day: date) -> dict:
    # The identity-stitching comparison is an analysis, and a second transform: off in the daily run.
    return {
        "warehouse_root": str(layout.staging_warehouse(day)),
        "mode": "incremental",
        "compare_identity_stitching": False,
        **_published_warehouse(layout),
    }


def _monitoring_parameters(layout: Layout, day: date) -> dict:
    return {"warehouse_root": str(layout.staging_warehouse(day)), **_published_warehouse(layout)}


@dataclass
class Stage:
    notebook: str
    status_file: str
    exit_code: int
    parameters: Callable[[Layout, date], dict]  # beyond run_date, params_dir, outputs_dir, output_dir
    optional: bool = False  # skipped when the notebook is absent (else that is an error)
    quarantine: bool = False  # on an error, the staged outputs are kept for inspection


GATE = Stage("01_data_quality", STATUS_FILES["dq"], EXIT_GATE, _gate_parameters)
DAILY_STAGES = [
    GATE,
    Stage("02_transform", STATUS_FILES["transform"], EXIT_TRANSFORM, _transform_parameters, quarantine=True),
    Stage(
        "04_monitoring",
        STATUS_FILES["monitoring"],
        EXIT_MONITORING,
        _monitoring_parameters,
        optional=True,
        quarantine=True,
    ),
]


@dataclass
class StageResult:
    stage: str
    status: str
    seconds: float
    notebook: str | None = None
    html: str | None = None
    message: str = ""


@dataclass
class DayResult:
    date: str
    exit_code: int = EXIT_OK
    stopped_at: str | None = None
    reason: str = ""
    stages: list[StageResult] = field(default_factory=list)
    published: bool = False
    quarantine_path: str | None = None
    alert: dict | None = None  # {sent: True | False | None (no webhook), detail, outcome} when the day alerted


RunLayout = Layout  # the name the runner's callers know


def notebook_path(name: str) -> Path:
    return REPO_ROOT / "notebooks" / f"{name}.ipynb"


def execute_notebook(
    name: str, out_dir: Path, parameters: dict, on_cell_executed: Callable[..., None] | None = None
) -> Path:
    """Run ``notebooks/<name>.ipynb`` with papermill; the executed copy goes to ``out_dir``. Inside a
    ``KernelSession`` the session's kernel runs it, else a kernel of its own. ``on_cell_executed``:
    nbclient's hook, called in this thread after each cell."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{name}.ipynb"
    common = {
        "parameters": parameters,
        "cwd": str(REPO_ROOT),
        "kernel_name": "python3",
        "progress_bar": False,
        "log_output": False,
        "on_cell_executed": on_cell_executed,
    }
    session = KernelSession.current()
    if session is None:
        pm.execute_notebook(
            str(notebook_path(name)), str(executed), kernel_manager_class=quiet_shutdown_kernel_manager(), **common
        )
    else:
        session.prepare()
        _register_shared_kernel_engine()
        pm.execute_notebook(
            str(notebook_path(name)), str(executed), engine_name=_SHARED_KERNEL_ENGINE, km=session.km, **common
        )
    return executed


class KernelSession:
    """One notebook kernel for every notebook executed inside the block (``execute_notebook``).

    Starting a kernel and importing the library (pandas, Ibis, DuckDB, matplotlib, …) costs
    several seconds, more than a day's work at the real volume; a run pays it once. Before each
    notebook the kernel's namespace is emptied (``%reset -f``: variables go, imported modules and
    their caches stay), so a notebook sees only its own parameters, as in a kernel of its own. A
    kernel that died (a crash, the memory killer) is started again for the next notebook.

    A session belongs to the thread that entered it (a backfill's second ``_Lane`` has a kernel of
    its own); ``_Lane`` lends the caller's to its thread."""

    _threads = threading.local()

    def __init__(self):
        self.km = None

    @classmethod
    def current(cls) -> KernelSession | None:
        """The session this thread is inside, if any."""
        return getattr(cls._threads, "session", None)

    def __enter__(self) -> KernelSession:
        if KernelSession.current() is not None:
            return KernelSession.current()
        KernelSession._threads.session = self
        self._start()  # the kernel starts and imports while this process imports papermill
        return self

    def __exit__(self, *exc) -> None:
        if KernelSession.current() is self:
            KernelSession._threads.session = None
            self._shutdown()

    def prepare(self) -> None:
        """A live kernel (the notebook's own client empties its namespace: ``_shared_kernel_client_class``)."""
        if self.km is not None and not _run_sync(self.km.is_alive()):
            log.warning("the notebook kernel died; starting a new one")
            self._shutdown()
        if self.km is None:
            self._start()

    def _start(self) -> None:
        """Start the kernel and have it import what the notebooks import, without waiting: the
        first notebook's request queues behind the imports."""
        self.km = quiet_shutdown_kernel_manager()(kernel_name="python3")
        _run_sync(self.km.start_kernel(cwd=str(REPO_ROOT)))
        threading.Thread(target=_warm_kernel, args=(self.km,), name="puffy-warm-kernel", daemon=True).start()

    def kill(self) -> None:
        """Kill the kernel process now, from any thread (an interrupted run): its notebook fails at once."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None:
            process.kill()

    def _shutdown(self) -> None:
        if self.km is not None:
            try:
                _run_sync(self.km.shutdown_kernel(now=True))
            except Exception as exc:  # a kernel already gone
                log.debug("kernel shutdown: %s", exc)
            self.km = None


def _run_sync(awaitable):
    """Wait for a kernel manager's coroutine from synchronous code (jupyter_client's own loop)."""
    from jupyter_core.utils import run_sync

    async def wait():
        return await awaitable

    return run_sync(wait)()


_SHARED_KERNEL_ENGINE = "puffy-shared-kernel"

# What the daily notebooks import (their first use costs ~2 s): a warm kernel pays it while the
# runner is busy with its own imports. A module that fails to import fails in its notebook instead.
_KERNEL_WARM_UP = """
try:
    import matplotlib.pyplot, pandas, IPython.display
    import puffy.dq.stage, puffy.transform.stage, puffy.transform.pipeline, puffy.monitoring.stage
    import puffy.monitoring.report
except Exception:
    pass
"""


def _warm_kernel(km) -> None:
    """Run ``_KERNEL_WARM_UP`` in ``km``'s kernel (a thread: the runner goes on meanwhile)."""
    client = km.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        client.execute_interactive(_KERNEL_WARM_UP, silent=True, store_history=False, timeout=120)
    except Exception as exc:  # the notebooks import what they need anyway
        log.debug("kernel warm-up: %s", exc)
    finally:
        client.stop_channels()


# The namespace emptied, its garbage collected, then every object still alive (modules, their
# caches) frozen out of the collector's sight: a full collection scanned them all, ~0.2 s before
# each notebook and again at every automatic collection inside it. Only objects that become cyclic
# garbage after being frozen are never collected: what the namespace held is collected first.
_RESET_NAMESPACE = "get_ipython().run_line_magic('reset', '-f'); __import__('gc').collect(); __import__('gc').freeze()"

# papermill rewrites the executed notebook (validated, ~5 ms) as each cell starts and again as it
# completes, ~85 times a day between cells; while cells run, once a second is progress enough.
_PROGRESS_SAVE_SECONDS = 1.0


def _at_most_every(seconds: float, save: Callable[..., None]) -> Callable[..., None]:
    """``save``, skipped when the last call that saved was less than ``seconds`` ago."""
    last = [float("-inf")]

    def throttled(**kwargs) -> None:
        if time.monotonic() - last[0] >= seconds:
            save(**kwargs)
            last[0] = time.monotonic()

    return throttled


@functools.cache
def _register_shared_kernel_engine() -> None:
    """papermill's nbclient engine on the session's kernel (``_shared_kernel_client_class``), saving
    the executed notebook while it runs at most once a second (``_PROGRESS_SAVE_SECONDS``) and
    closing its kernel client after the notebook (papermill leaves it open when it does not own the
    kernel)."""
    from papermill.engines import NBClientEngine, papermill_engines

    client_class = _shared_kernel_client_class()

    class SharedKernelEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man,
            kernel_name,
            log_output=False,
            stdout_file=None,
            stderr_file=None,
            start_timeout=60,
            execution_timeout=None,
            **kwargs,
        ):
            from papermill.engines import logger

            kwargs.pop("input_path", None)
            client = client_class(
                nb_man,
                km=kwargs.pop("km"),
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logger,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                **kwargs,
            )
            save = nb_man.save
            nb_man.save = _at_most_every(_PROGRESS_SAVE_SECONDS, save)
            try:
                return client.execute()
            finally:
                nb_man.save = save  # papermill's final saves are never skipped
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register(_SHARED_KERNEL_ENGINE, SharedKernelEngine)


@functools.cache
def _shared_kernel_client_class() -> type:
    """papermill's notebook client, except that the kernel client it opens on the session's kernel
    (1) empties the kernel's namespace before the first cell (a notebook sees only its own
    parameters), and (2) is ready once the kernel has answered and its IOPub channel is connected.

    (2) jupyter_client's ``wait_for_ready`` also drains IOPub until 0.2 s pass without a message:
    0.2 s per notebook for nothing, since nbclient ignores every message that does not answer its
    own requests."""
    from nbclient.util import run_sync
    from papermill.clientwrap import PapermillNotebookClient

    class SharedKernelClient(PapermillNotebookClient):
        async def async_start_new_kernel_client(self):
            from nbclient.util import ensure_async, run_hook

            self.kc = self.km.client()
            try:
                await ensure_async(self.kc.start_channels())
                await _kernel_ready(self.kc, self.startup_timeout)
                await self.kc.execute_interactive(_RESET_NAMESPACE, store_history=False, timeout=self.startup_timeout)
            except Exception:
                self.kc.stop_channels()
                raise
            self.kc.allow_stdin = False
            await run_hook(self.on_notebook_start, notebook=self.nb)
            return self.kc

        start_new_kernel_client = run_sync(async_start_new_kernel_client)  # what setup_kernel calls

    return SharedKernelClient


async def _kernel_ready(kc, timeout: float) -> None:
    """The kernel answers ``kernel_info`` and its IOPub channel is connected (a status message of
    that request arrives: a SUB socket drops what is sent before it is connected, so ask again)."""
    from queue import Empty

    deadline = time.monotonic() + timeout
    while True:
        kc.kernel_info()
        try:
            reply = await kc.get_shell_msg(timeout=1)
            if reply["msg_type"] == "kernel_info_reply":
                await kc.get_iopub_msg(timeout=0.2)
                return
        except Empty:
            pass
        if not await kc.is_alive():
            raise RuntimeError("the notebook kernel died before replying to kernel_info")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the notebook kernel did not respond in {timeout:.0f} seconds")


@functools.cache
def quiet_shutdown_kernel_manager() -> type:
    """jupyter_client's kernel manager, except that (1) shutting a kernel down does not interrupt it
    first, (2) the kernel dies with the runner, (3) it talks to the runner over IPC, not TCP, and
    (4) its stderr goes to the run's log file when there is one (``puffy.runlog``).

    (1) jupyter_client sends SIGINT before every shutdown request. A kernel that is still handling a
    message then logs "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel" to the run's
    stderr, after a notebook that succeeded: noise for anyone who greps a scheduler's log for
    ERROR. The notebook has finished by then, so there is nothing to interrupt. Interrupts at any
    other time (a cell past its timeout) are sent as before; a kernel that ignores the shutdown
    request is still killed after jupyter_client's wait.

    (2) jupyter_client starts the kernel in a session of its own, so killing the runner, or its
    process group, left the kernel running (and writing into the warehouse) until ipykernel's
    parent poller noticed, 1-3 s later. The kernel is launched through ``die_with_parent_cmd``, so
    the Linux kernel sends it SIGKILL the moment the runner dies, even by SIGKILL.
    """
    from jupyter_client import AsyncKernelManager

    class QuietShutdownKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            # IPC (a Unix socket in a private temporary directory) rather than TCP on localhost:
            # nothing else on the machine can connect to the kernel, and ipykernel has no cause to
            # warn on stderr, once per notebook, that it is "running over TCP without encryption".
            # Each kernel has socket names of its own: jupyter_client numbers them after the files
            # that exist, and a kernel that has not bound its sockets yet has none, so two kernels
            # starting together (a backfill's two) would take the same names.
            if os.name == "posix":
                kw.setdefault("transport", "ipc")
                kw.setdefault("ip", str(Path(_ipc_dir()) / f"kernel{next(_KERNEL_NUMBERS)}"))
            super().__init__(**kw)

        async def _async_interrupt_kernel(self) -> None:
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
            log_file = active_log()
            if log_file is None:
                await super()._async_launch_kernel(die_with_parent_cmd(kernel_cmd), **kw)
                return
            with open(log_file, "ab") as kernel_stderr:  # the kernel keeps its own copy of the descriptor
                await super()._async_launch_kernel(die_with_parent_cmd(kernel_cmd), **{**kw, "stderr": kernel_stderr})

    return QuietShutdownKernelManager


_KERNEL_NUMBERS = itertools.count(1)


@functools.cache
def _ipc_dir() -> str:
    import atexit
    import tempfile

    path = tempfile.mkdtemp(prefix="puffy-kernels-")  # mode 0700: this user's kernels only
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# Runs in the launched process, then becomes the kernel (exec keeps the death signal): asks Linux
# for SIGKILL when its parent, the runner, dies; exits at once if the runner died before that.
_DIE_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent_cmd(cmd: list[str]) -> list[str]:
    """``cmd`` run so that it is killed (SIGKILL) when this process dies; ``cmd`` itself on
    systems without ``prctl(PR_SET_PDEATHSIG)`` (not Linux).

    A wrapper that execs rather than a ``preexec_fn``: the runner has threads (zmq's), and code run
    between fork and exec in a threaded process can deadlock. The death signal follows the thread
    that started the process, which is the thread running the notebook until it has finished.
    """
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]


# nbconvert's lab template, with each code cell's source after its results, folded: readers of a
# report see results; whoever wants to know how a number was made opens "code" under it. A chart
# carries the text alternative its notebook gives it (the image's ``alt`` metadata, from
# ``IPython.display.Image(alt=...)``, or the cell's ``alt`` metadata), which the lab template drops:
# screen readers get a description, and nbconvert no longer logs "Alternative text is missing" on
# every report.
_RESULTS_FIRST_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block codecell %}
{{ super() }}
{%- if cell.source.strip() %}
<details class="puffy-code"><summary>code</summary>
{{ cell.source | highlight_code(metadata=cell.metadata) | clean_html }}
</details>
{%- endif %}
{% endblock codecell %}
{% block data_png scoped %}
{%- set alttext = (output | get_metadata('alt', 'image/png')) or (cell | get_metadata('alt')) -%}
{%- if alttext -%}
{{ super() | replace('<img ', '<img alt="' ~ (alttext | escape_html) ~ '" ', 1) }}
{%- else -%}
{{ super() }}
{%- endif %}
{% endblock data_png %}
"""


def render_html(executed: Path, no_input: bool = True) -> Path:
    """Render an executed notebook to HTML next to it: results only, each code cell folded under its
    results ("code", closed) by default; ``no_input=False`` shows the code above the results as
    Jupyter does."""
    import nbformat

    body, _ = _html_exporter(no_input).from_notebook_node(nbformat.read(executed, as_version=4))
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


@functools.cache
def _html_exporter(no_input: bool):
    """One exporter per layout for the process: building one loads and compiles its templates."""
    import jinja2
    from nbconvert import HTMLExporter

    options = {"exclude_input_prompt": True, "exclude_output_prompt": True}
    if no_input:
        options.update(
            exclude_input=True,
            template_file="puffy_results_first.html.j2",
            extra_loaders=[jinja2.DictLoader({"puffy_results_first.html.j2": _RESULTS_FIRST_TEMPLATE})],
        )
    return HTMLExporter(template_name="lab", **options)


def read_status(run_dir: Path, status_file: str) -> tuple[str, str]:
    """(status, message) from a stage's status JSON; a missing file means the stage failed."""
    path = run_dir / status_file
    if not path.exists():
        return "error", f"{status_file} was not written"
    data = json.loads(path.read_text(encoding="utf-8"))
    return data.get("status", "error"), data.get("message", "")


def notebook_error(exc: Exception) -> str:
    """A failed notebook's error in one line: the exception's name and value from the failing cell.

    An error raised through another library's callback carries that library's traceback in its
    text (DuckDB reading through pyarrow's S3 filesystem: "Traceback (most recent call last): …
    OSError: When getting information for key … AWS Error ACCESS_DENIED …"): its last
    ``Name: message`` line is what happened."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = str(getattr(exc, "evalue", str(exc)))
    if evalue.startswith("Traceback (most recent call last)"):
        raised = [line for line in evalue.splitlines() if _RAISED_LINE.match(line)]
        evalue = raised[-1] if raised else evalue.splitlines()[0]
    return f"{ename}: {evalue}".strip()


_RAISED_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning|Interrupt|Exit): ")


def _after_failed_cell(run_dir: Path, stage: Stage, error: str) -> tuple[str, str]:
    """(status, message) of a stage whose notebook raised: an error, unless the stage had already
    written its status (then the failing cell only displays results: a warning at worst)."""
    if not (run_dir / stage.status_file).exists():
        return "error", error
    status, message = read_status(run_dir, stage.status_file)
    note = f"a cell failed after {stage.status_file} was written: {error}"
    return ("error" if status == "error" else "warn"), "; ".join(m for m in (message, note) if m)


def run_day(day: date, layout: Layout) -> DayResult:
    """Run every daily stage for ``day`` in this thread's kernel; never raises for a failing stage
    (the result says why). A publish that a killed run left unfinished is completed or undone first."""
    _recover_published(layout)
    return _run_day(day, layout, _DayOrder(1, stop_on_error=False), 0)


def _recover_published(layout: Layout) -> None:
    from puffy.publish import recover

    for done in recover(layout.warehouse):
        log.warning("%s: %s", layout.warehouse, done)


class _DayOrder:
    """What the days of a run wait for from the day before, when two kernels run them (``run_range``).

    Day D's gate waits for D-1's gate (it reads D-1's gate report: incident history); D's transform
    waits until D-1 is *settled*, published or known not to be (it reads D-1's published tables);
    D's alert and run summary wait for D-1's. A day that fails under ``--stop-on-error``, or that
    crashes, stops every later day at its next wait."""

    def __init__(self, days: int, stop_on_error: bool):
        self._events = [{step: threading.Event() for step in ("gated", "settled", "finished")} for _ in range(days)]
        self._stop_on_error = stop_on_error
        self._first_failed = days  # index of the earliest day that stops the days after it
        self._lock = threading.Lock()
        self.interrupted = False  # the runner was interrupted: a day that was running did not fail

    def interrupt(self) -> None:
        self.interrupted = True
        self.stop_after(-1)

    def wait(self, i: int, step: str) -> bool:
        """Wait until day ``i - 1`` has passed ``step``; False when an earlier day stopped the run."""
        if i > 0:
            self._events[i - 1][step].wait()
        with self._lock:
            return self._first_failed >= i

    def passed(self, i: int, step: str, failed: bool = False) -> None:
        if failed and self._stop_on_error:
            self.stop_after(i)
        self._events[i][step].set()

    def stop_after(self, i: int) -> None:
        with self._lock:
            self._first_failed = min(self._first_failed, i)

    def close(self, i: int) -> None:
        """Day ``i`` is over, however it ended: nothing waits for it any more."""
        for event in self._events[i].values():
            event.set()


def _run_day(day: date, layout: Layout, order: _DayOrder, i: int) -> DayResult | None:
    """Day ``i`` of a run (``run_day``, ``run_range``); None when an earlier day stopped the run
    before this one published (its run directory is removed: a gate that ran is not a day that ran)."""
    try:
        if not order.wait(i, "gated"):
            return None
        result = DayResult(day.isoformat())
        run_dir = layout.run_dir(day)
        staging_wh = layout.staging_warehouse(day)
        shutil.rmtree(staging_wh, ignore_errors=True)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="puffy-render") as renderer:
            rendering = _run_stages(day, layout, result, staging_wh, renderer, order, i)
            order.passed(i, "settled", failed=bool(result.exit_code))
        shutil.rmtree(staging_wh.parent, ignore_errors=True)
        if rendering is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        if rendering is None or (order.interrupted and not result.published):
            # interrupted: its notebooks stay as far as they ran, with no summary or alert (nothing failed)
            return None
        for stage_result, html in rendering:  # rendered while the next notebook ran, or the day published
            stage_result.html = _rendered(html, stage_result.notebook)
        run_dir.mkdir(parents=True, exist_ok=True)
        order.wait(i, "finished")
        result.alert = send_alert(result, layout)
        (run_dir / "run_summary.json").write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
        return result
    except BaseException:
        order.stop_after(i)
        raise
    finally:
        order.close(i)


def _publish(day: date, staging_wh: Path, layout: Layout, result: DayResult) -> None:
    from puffy.publish import publish

    published = publish(staging_wh, layout.warehouse)
    result.published = bool(published)
    log.info("%s published %d partitions to %s", day, len(published), layout.warehouse)


def _rendered(html: Future, notebook: str | None) -> str | None:
    """The HTML report's path, or None (logged) when rendering failed: a rendering failure must not
    hide the stage's own result."""
    try:
        return str(html.result())
    except Exception as exc:
        log.warning("could not render %s: %s", Path(notebook or "").name, exc)
        return None


class _PublishWhenAudited:
    """nbclient's ``on_cell_executed`` hook for a day's last stage: publishes the day as soon as the
    stage's status file is written and is not an error. The cells after it only display (a chart, a
    table): failing, they make the stage a warning, never stop the publish. So the next day's
    transform, in the other kernel, starts while this notebook finishes."""

    def __init__(self, status_path: Path, publish: Callable[[], None]):
        self._status_path, self._publish = status_path, publish
        self._fired = self.published = False
        self.error: BaseException | None = None  # raised again by the runner once the notebook is done

    def __call__(self, **_cell) -> None:
        if self._fired or not self._status_path.exists():
            return
        self._fired = True
        if read_status(self._status_path.parent, self._status_path.name)[0] != "error":
            try:
                self._publish()
                self.published = True
            except BaseException as exc:
                self.error = exc


def _run_stages(
    day: date,
    layout: Layout,
    result: DayResult,
    staging_wh: Path,
    renderer: ThreadPoolExecutor,
    order: _DayOrder,
    i: int,
) -> list[tuple[StageResult, Future]] | None:
    """Execute the daily notebooks in order into ``result`` until one fails (quarantining its staged
    outputs when the stage says so), publishing the day as soon as its last stage has audited it;
    each executed notebook's HTML is rendered by ``renderer`` in the runner's process while the
    kernel runs the next notebook. None: an earlier day stopped the run after this day's gate."""

    def publish_now() -> None:
        _publish(day, staging_wh, layout, result)
        order.passed(i, "settled")

    rendering = []
    stages = [s for s in DAILY_STAGES if not s.optional or notebook_path(s.notebook).exists()]
    audit = _PublishWhenAudited(layout.run_dir(day) / stages[-1].status_file, publish_now)
    for stage in stages:
        if stage is stages[1] and not order.wait(i, "settled"):  # the first stage that reads the day before
            return None
        stage_result = _execute_stage(stage, day, layout, on_cell_executed=audit if stage is stages[-1] else None)
        if audit.error is not None:
            raise audit.error
        if stage is GATE:
            order.passed(i, "gated", failed=stage_result.status == "error")
        result.stages.append(stage_result)
        if Path(stage_result.notebook).exists():
            rendering.append((stage_result, renderer.submit(render_html, Path(stage_result.notebook))))
        status, message = stage_result.status, stage_result.message
        log.info(
            "%s %s: %s in %.1fs%s",
            day,
            stage.notebook,
            status.upper(),
            stage_result.seconds,
            f" — {message}" if message else "",
        )
        if status == "error":
            result.exit_code, result.stopped_at, result.reason = stage.exit_code, stage.notebook, message
            if stage.quarantine and not order.interrupted:
                _quarantine_day(day, staging_wh, layout, result)
            break
    else:
        if not audit.published:  # the last stage failed after writing a status that allows it
            _publish(day, staging_wh, layout, result)
    return rendering


def _quarantine_day(day: date, staging_wh: Path, layout: Layout, result: DayResult) -> None:
    """Copy a failed day's staged outputs, if it staged any, to ``quarantine/`` and say where."""
    from puffy.publish import quarantine

    if staging_wh.exists():
        _note_quarantine(day, quarantine(staging_wh, layout.quarantine), layout, result)


def _note_quarantine(day: date, target, layout: Layout, result: DayResult) -> None:
    """Where a day's staged outputs were quarantined: its result and ``quarantine_path.txt``."""
    (layout.run_dir(day) / "quarantine_path.txt").write_text(f"{target}\n", encoding="utf-8")
    result.quarantine_path = str(target)
    log.info("%s quarantined staged outputs to %s; published warehouse untouched", day, target)


def _execute_stage(
    stage: Stage, day: date, layout: Layout, on_cell_executed: Callable[..., None] | None = None
) -> StageResult:
    """Run ``stage``'s notebook for ``day`` into the day's run directory and read the status it
    wrote. Never raises for a failing cell."""
    t0 = time.perf_counter()
    run_dir = layout.run_dir(day)
    if stage is GATE:  # the day's first stage: reports of an earlier run of the day must not linger
        shutil.rmtree(run_dir, ignore_errors=True)
    executed = run_dir / f"{stage.notebook}.ipynb"
    if not notebook_path(stage.notebook).exists():
        status, message = "error", f"{notebook_path(stage.notebook)} is missing"
    else:
        parameters = {
            "run_date": day.isoformat(),
            "params_dir": str(layout.params_dir),
            "outputs_dir": str(layout.outputs_dir),
            "output_dir": str(run_dir),
            **stage.parameters(layout, day),
        }
        try:
            execute_notebook(stage.notebook, run_dir, parameters, on_cell_executed=on_cell_executed)
            status, message = read_status(run_dir, stage.status_file)
        except Exception as exc:  # a failing cell: report it, keep the partial notebook
            status, message = _after_failed_cell(run_dir, stage, notebook_error(exc))
    return StageResult(stage.notebook, status, round(time.perf_counter() - t0, 2), str(executed), None, message)


class _Lane:
    """A thread with a notebook kernel of its own that runs whole days, one after the other.

    A backfill has two: day D in one, D+1 in the other. While D is transformed and audited, D+1 is
    gated; once D is published, D+1's transform starts while D's notebook draws its charts; then
    D+2's gate runs beside it. The second core, half idle when one kernel ran every notebook, does
    the gates and the notebooks' ends. ``session``: the caller's kernel (``puffy run`` starts it
    while it checks its arguments), used rather than a new one; it stays the caller's to shut down."""

    def __init__(self, session: KernelSession | None = None):
        self._own = session is None
        self.session = session or KernelSession()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="puffy-lane")
        self._thread.submit(self._enter)  # a kernel of its own starts while the first day is gated

    def _enter(self) -> None:
        if self._own:
            self.session.__enter__()
        else:
            KernelSession._threads.session = self.session

    def _leave(self) -> None:
        if self._own:
            self.session.__exit__(None, None, None)  # in the thread that started it (it dies with it)
        else:
            KernelSession._threads.session = None

    def submit(self, fn: Callable, *args) -> Future:
        return self._thread.submit(fn, *args)

    def close(self) -> None:
        self._thread.submit(self._leave)
        self._thread.shutdown(wait=True)


def _alert_rules(layout: Layout):
    from puffy.monitoring.rules import AlertRules, load_rules

    rules_file = layout.params_dir / "monitoring_rules.yaml"
    return load_rules(rules_file).alert if rules_file.exists() else AlertRules()


def send_alert(result: DayResult, layout: RunLayout) -> dict | None:
    """The day's on-call alert, when the day needs one (``puffy.monitoring.alert``); what came of it.
    Never raises: an alert must not turn a finished day into a crash."""
    from puffy.monitoring import alert

    try:
        rules = _alert_rules(layout)
        doc = alert.alert_for_day(result, layout.run_dir(date.fromisoformat(result.date)), layout.outputs_dir, rules)
        return None if doc is None else alert.deliver(doc, layout.run_dir(date.fromisoformat(result.date)), rules)
    except Exception as exc:
        log.warning("%s: no alert: %s: %s", result.date, type(exc).__name__, exc)
        return {"sent": False, "detail": f"{type(exc).__name__}: {exc}", "outcome": None}


def send_backfill_digest(results: list[DayResult], layout: RunLayout, start: date, end: date, where: Path) -> None:
    """A one-pass backfill's alerts: each day's document in its ``runs/<D>/alert.json``, and one
    message for the whole backfill (``alert.backfill_digest``) in ``where/alert.json`` and to the
    webhook; each alerting day's ``alert`` says where it went. Never raises."""
    from puffy.monitoring import alert

    try:
        rules = _alert_rules(layout)
        days = []
        for result in results:
            run_dir = layout.run_dir(date.fromisoformat(result.date))
            doc = alert.alert_for_day(result, run_dir, layout.outputs_dir, rules)
            if doc is not None:
                alert.write_alert(doc, run_dir)
            days.append((result, doc))
        digest = alert.backfill_digest(start, end, days, layout.outputs_dir, rules)
        if digest is None:
            return
        where.mkdir(parents=True, exist_ok=True)
        sent = alert.deliver_digest(digest, where, rules)
        for result, doc in days:
            if doc is not None:
                detail = f"in the backfill's digest ({where / 'alert.json'}): {sent['detail']}"
                result.alert = {"sent": sent["sent"], "detail": detail, "outcome": doc["outcome"]}
    except Exception as exc:
        log.warning("backfill %s..%s: no alert digest: %s: %s", start, end, type(exc).__name__, exc)


def run_range(
    start: date, end: date, layout: RunLayout, stop_on_error: bool = False, progress: bool | None = None
) -> list[DayResult]:
    """Run each day in order; a backfill runs days alternately in two kernels (``_Lane``), each day
    waiting for what it needs of the day before (``_DayOrder``), so results, reports and publishes
    are those of a day-by-day run. A day stopped by an error does not stop later days unless
    ``stop_on_error``; then a day whose gate had already run leaves no run directory (its staged
    events stay: the gate's own output, read by no earlier day). The caller exits with the worst
    exit code.

    ``progress``: a progress bar on stderr for more than one day; by default only when stderr is a
    terminal (in a scheduler's log, a bar is a stream of carriage returns).

    One run at a time per outputs directory (``exclusive_outputs``): a second one, say a
    scheduler's retry while a backfill is still going, stops with a ``UserError`` at once.
    """
    from tqdm import tqdm

    with exclusive_outputs(layout.outputs_dir):
        _recover_published(layout)  # before any day: a killed publish completed or undone
        days = date_range(start, end)
        if progress is None:
            progress = sys.stderr.isatty()
        bar = tqdm(total=len(days), desc="puffy run", unit="day", disable=not progress or len(days) == 1)
        order = _DayOrder(len(days), stop_on_error)
        lanes = [_Lane(KernelSession.current()), *([_Lane()] if len(days) > 1 else [])]
        runs = [lanes[i % len(lanes)].submit(_run_day, day, layout, order, i) for i, day in enumerate(days)]
        results, interrupted = [], True
        try:
            for day, run in zip(days, runs, strict=True):
                bar.set_postfix_str(day.isoformat())
                if (result := run.result()) is not None:
                    results.append(result)
                bar.update()
            interrupted = False
        finally:
            if interrupted:  # the running notebooks fail now instead of running to their end
                order.interrupt()
                log.warning(
                    "interrupted: a running day not yet published stops with no summary, nothing of it published"
                )
                for lane in lanes:
                    lane.session.kill()
            for lane in lanes:
                lane.close()
            bar.close()
        write_index(layout.outputs_dir)
    return results


def run_range_one_pass(
    start: date, end: date, layout: RunLayout, stop_on_error: bool = False, progress: bool | None = None
) -> list[DayResult]:
    """Run ``start..end`` executing each notebook once for the range (``puffy.backfill``) rather
    than once per day. The gate notebook gates each day on its own; the days that pass are
    transformed in one run (a *segment*: consecutive days that passed their gate); the monitoring
    notebook audits and publishes them day by day. A day quarantined ends its segment: the days
    after it are transformed again without it. A segment whose transform fails runs again one day
    per segment, so that the failing day is the one that stops. What differs from ``run_range``'s
    results is in README, *The scheduler*. The executed range notebooks are kept under
    ``runs/backfills/<start>_<end>/<first>_<last>/``; each day's run directory holds its reports,
    statuses and ``run_summary.json`` as in a daily run."""
    from tqdm import tqdm

    with exclusive_outputs(layout.outputs_dir), KernelSession() as session:
        _recover_published(layout)
        days = date_range(start, end)
        if progress is None:
            progress = sys.stderr.isatty()
        bar = tqdm(total=len(days), desc="puffy run", unit="day", disable=not progress)
        run = _OnePass(layout, stop_on_error, layout.outputs_dir / "runs" / "backfills" / f"{start}_{end}")
        # The notebooks run in a thread of their own, so that an interrupt reaches this one, which
        # kills the kernel: the running notebook fails at once and the pass stops there.
        lane = _Lane(session)
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="puffy-render") as run.renderer:
                passing = lane.submit(run.drive, days)
                try:
                    while not _done_within(passing, 1.0):
                        bar.update(run.days_audited(days) - bar.n)
                        bar.set_postfix_str(run.running, refresh=False)
                    passing.result()
                except KeyboardInterrupt:
                    run.interrupted = True
                    session.kill()
                    log.warning("interrupted: the days published so far stay published, with their summaries")
                    passing.result()
                    raise
        finally:
            lane.close()
            run.write_summaries(start, end)
            bar.close()
        write_index(layout.outputs_dir)
    return [run.results[day] for day in sorted(run.results)]


# A one-pass backfill transforms at most this many events at once (a day with more goes alone): the
# transform's memory grows with its range up to DuckDB's limit, ~1.5 GB of process for a year at
# the real volume (1.3M events), ~0.9 GB for half a million; each more segment costs ~4 s.
ONE_PASS_MAX_EVENTS = 500_000


def _done_within(future: Future, seconds: float) -> bool:
    try:
        future.exception(timeout=seconds)
        return True
    except TimeoutError:
        return False


def _gated_events(run_dir: Path) -> int:
    """The events a day's gate staged (its report's summary)."""
    report = json.loads((run_dir / GATE.status_file).read_text(encoding="utf-8"))
    return int(report.get("summary", {}).get("events", 0))


class _OnePass:
    """A one-pass run's state (``run_range_one_pass``): each day's result, which days are settled
    (published, stopped or quarantined), the executed range notebooks' rendering."""

    def __init__(self, layout: Layout, stop_on_error: bool, pass_dir: Path):
        self.layout, self.stop_on_error, self.pass_dir = layout, stop_on_error, pass_dir
        self.results: dict[date, DayResult] = {}
        self.settled: set[date] = set()
        self.first_failed: date | None = None  # under --stop-on-error: no later day runs
        self.staging = layout.outputs_dir / "staging" / "backfill" / "warehouse"  # a segment's transform
        self.renderer: ThreadPoolExecutor | None = None
        self.rendering: dict[str, Future] = {}
        self.interrupted = False  # the running notebook was killed: nothing more runs, nothing of it failed
        self.running = ""  # the notebook running and its days (the progress bar's postfix)
        shutil.rmtree(pass_dir, ignore_errors=True)

    def days_audited(self, days: list[date]) -> int:
        """How many days of the pass are settled or audited by now (the progress bar): an audited
        day's outcome is written by the running notebook, a gate error is settled by the runner."""
        from puffy.backfill import PUBLISH_OUTCOME

        audited = [d for d in days if (self.layout.run_dir(d) / PUBLISH_OUTCOME).exists()]
        return len(self.settled.union(d for d in audited if d in self.results))

    def drive(self, days: list[date]) -> None:
        """Gate every day, then transform, audit and publish segment after segment."""
        segments = self.gate(days)
        while segments and not self.interrupted:
            segments = self.transform_and_audit(segments[0]) + segments[1:]
        for day in [d for d in self.results if self.first_failed and d > self.first_failed]:
            # gated before an earlier day stopped the run (--stop-on-error): as if never run
            self.results.pop(day)
            self.settled.discard(day)
            shutil.rmtree(self.layout.run_dir(day), ignore_errors=True)

    def gate(self, days: list[date]) -> list[list[date]]:
        """Gate every day (the gate notebook once; again from the day after one it failed on); the
        segments to transform."""
        remaining = days
        while remaining and self.first_failed is None and not self.interrupted:
            parameters = {
                **_gate_parameters(self.layout, remaining[0]),
                "each_day": True,
                "stop_at_error": self.stop_on_error,
            }
            executed, seconds, error = self._execute(GATE, remaining, parameters)
            gated = [d for d in remaining if (self.layout.run_dir(d) / GATE.status_file).exists()]
            for day in gated:
                self._record(day, GATE, *read_status(self.layout.run_dir(day), GATE.status_file), executed, seconds)
            if error is None or self.interrupted:
                break
            self._record(remaining[len(gated)], GATE, "error", error, executed, seconds)
            remaining = remaining[len(gated) + 1 :]
        segments, events = [[]], 0
        for day in sorted(self.results):
            if self.results[day].exit_code:
                self.settled.add(day)
                segments.append([])
                continue
            day_events = _gated_events(self.layout.run_dir(day))
            if segments[-1] and events + day_events > ONE_PASS_MAX_EVENTS:
                segments.append([])
            events = (events if segments[-1] else 0) + day_events
            segments[-1].append(day)
        return [segment for segment in segments if segment]

    def transform_and_audit(self, days: list[date]) -> list[list[date]]:
        """Transform ``days`` in one run, then audit and publish them in order; the segments this
        leaves to run (the days around a quarantined one; each day alone after a failed transform)."""
        if self.first_failed is not None and days[0] > self.first_failed:
            return []
        for day in days:  # a day transformed again: what the discarded transform did is forgotten
            result = self.results[day]
            del result.stages[1:]
            result.published, result.quarantine_path = False, None
        self._clear_staging(days)
        instead = self._transform(days)
        if instead is None:
            instead = self._audit(days)
        self._clear_staging(days)
        return instead

    def _transform(self, days: list[date]) -> list[list[date]] | None:
        """Transform ``days`` into the pass's staging warehouse and split it per day; None when it
        passed, else the segments to run instead."""
        from puffy.backfill import split_staging

        transform = DAILY_STAGES[1]
        parameters = {**_transform_parameters(self.layout, days[0]), "warehouse_root": str(self.staging)}
        executed, seconds, error = self._execute(transform, days, parameters)
        if self.interrupted:
            return []
        status, message = read_status(executed.parent, transform.status_file)
        if error is not None:
            status, message = _after_failed_cell(executed.parent, transform, error)
        if status == "error" and len(days) > 1:
            log.info("%s..%s: the transform failed; each day is transformed on its own", days[0], days[-1])
            return [[day] for day in days]
        for day in days:
            if (executed.parent / transform.status_file).exists():
                shutil.copyfile(
                    executed.parent / transform.status_file, self.layout.run_dir(day) / transform.status_file
                )
            self._record(day, transform, status, message, executed, seconds)
        if status == "error":
            self._quarantine(days[0], self.staging)
            return []
        split_staging(self.staging, self.layout, days)
        return None

    def _audit(self, days: list[date]) -> list[list[date]]:
        """Audit and publish ``days`` in order (the monitoring notebook); the segments to run again
        when one was quarantined."""
        from puffy.backfill import read_outcome

        monitoring = DAILY_STAGES[2]
        parameters = {**_published_warehouse(self.layout), "each_day": True}
        executed, seconds, error = self._execute(monitoring, days, parameters)
        for day in days:
            run_dir, result = self.layout.run_dir(day), self.results[day]
            outcome = read_outcome(run_dir)
            if outcome is None and self.interrupted:  # killed before this day was audited
                return []
            if outcome is None:  # the notebook failed on this day: a failing audit, as in a daily run
                message = _after_failed_cell(run_dir, monitoring, error or "not audited")[1]
                self._record(day, monitoring, "error", message, executed, seconds)
                self._quarantine(day, self.layout.staging_warehouse(day))
            else:
                self._record(day, monitoring, *read_status(run_dir, monitoring.status_file), executed, seconds)
                result.published = bool(outcome["published"])
                self.settled.add(day)
                if outcome.get("quarantine_path"):  # quarantined by the audit notebook
                    _note_quarantine(day, outcome["quarantine_path"], self.layout, result)
            if outcome is None or outcome.get("quarantine_path"):
                # the days after it are transformed again without it; the day before it, alone
                rest = [d for d in days if d > day]
                return [segment for segment in (self._redo_before(day, days), rest) if segment]
        return []

    def _redo_before(self, quarantined: date, days: list[date]) -> list[date]:
        """The day before a quarantined one, when this segment published it: its sessions were
        completed with the quarantined day's events, which must not reach the warehouse (a daily
        run leaves it as its own run published it). It is transformed, audited and published
        again, alone."""
        before = quarantined - timedelta(days=1)
        return [before] if before in days and self.results[before].published else []

    def _execute(self, stage: Stage, days: list[date], parameters: dict) -> tuple[Path, float, str | None]:
        """Run ``stage``'s notebook for ``days``: (the executed notebook, seconds per day, the error
        of a failing cell or None). Its HTML is rendered while the next notebook runs."""
        out_dir = self.pass_dir / f"{days[0]}_{days[-1]}"
        self.running = f"{stage.notebook} {days[0]}..{days[-1]}"
        t0, error = time.perf_counter(), None
        parameters = {
            "start_date": days[0].isoformat(),
            "end_date": days[-1].isoformat(),
            "params_dir": str(self.layout.params_dir),
            "outputs_dir": str(self.layout.outputs_dir),
            "output_dir": str(out_dir),
            **parameters,
        }
        executed = out_dir / f"{stage.notebook}.ipynb"
        try:
            execute_notebook(stage.notebook, out_dir, parameters)
        except Exception as exc:  # a failing cell: the days it did not reach say so
            error = notebook_error(exc)
        if executed.exists():
            self.rendering[str(executed)] = self.renderer.submit(render_html, executed)
        seconds = time.perf_counter() - t0
        log.info("%s..%s %s in %.1fs%s", days[0], days[-1], stage.notebook, seconds, f" — {error}" if error else "")
        return executed, round(seconds / len(days), 2), error

    def _record(self, day: date, stage: Stage, status: str, message: str, executed: Path, seconds: float) -> None:
        """``stage``'s outcome for ``day``; ``seconds``: the day's share of the range notebook."""
        result = self.results.setdefault(day, DayResult(day.isoformat()))
        result.stages.append(StageResult(stage.notebook, status, seconds, str(executed), None, message))
        log.info("%s %s: %s%s", day, stage.notebook, status.upper(), f" — {message}" if message else "")
        if status == "error":
            result.exit_code, result.stopped_at, result.reason = stage.exit_code, stage.notebook, message
            if self.stop_on_error and (self.first_failed is None or day < self.first_failed):
                self.first_failed = day  # the earliest failing day stops every later one

    def _quarantine(self, day: date, staging: Path) -> None:
        _quarantine_day(day, staging, self.layout, self.results[day])
        self.settled.add(day)

    def _clear_staging(self, days: list[date]) -> None:
        for path in [self.staging.parent, *(self.layout.staging_warehouse(d).parent for d in days)]:
            shutil.rmtree(path, ignore_errors=True)

    def write_summaries(self, start: date, end: date) -> None:
        """The alerts (one digest for the pass) and ``run_summary.json`` of every settled day (a
        day the run was interrupted in, not yet published, has none: nothing of it failed)."""
        settled = sorted(self.settled & set(self.results))
        for day in settled:
            for stage_result in self.results[day].stages:
                if stage_result.notebook in self.rendering:
                    stage_result.html = _rendered(self.rendering[stage_result.notebook], stage_result.notebook)
        send_backfill_digest([self.results[day] for day in settled], self.layout, start, end, self.pass_dir)
        for day in settled:
            result = self.results[day]
            run_dir = self.layout.run_dir(day)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "run_summary.json").write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")


@contextmanager
def exclusive_outputs(outputs_dir: Path):
    """Hold ``<outputs_dir>/.puffy-run.lock`` for the block, or raise ``UserError`` if another
    process holds it. Two runs would empty each other's run and staging directories and publish
    over each other. The lock is the kernel's (``flock``): it goes with its process, so a killed
    run leaves nothing to clean up."""
    import fcntl

    outputs_dir = Path(outputs_dir).resolve()
    if outputs_dir in _HELD:  # this process holds it already (demo: clear, generate, then run)
        yield
        return
    outputs_dir.mkdir(parents=True, exist_ok=True)
    path = outputs_dir / ".puffy-run.lock"
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise UserError(f"{outputs_dir}: another puffy run is using it ({holder}); wait for it to finish") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        _HELD.add(outputs_dir)
        try:
            yield
        finally:
            _HELD.discard(outputs_dir)
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


_HELD: set[Path] = set()  # outputs directories whose lock this process holds

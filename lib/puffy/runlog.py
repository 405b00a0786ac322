"""What a run says, and where: a quiet, readable stderr and one log file per run.

* **stderr** carries puffy's own progress lines (a day's stages, publish, alerts) and other
  libraries' warnings, without the tools' chatter: papermill's "Input Notebook / Output Notebook /
  Working directory / Executing" lines, nbconvert's accessibility notes about chart alt text. A
  scheduler's mail or journal then shows what happened in a few lines.
* **the run log** (``<outputs_dir>/logs/run-<start>[_<end>]-<YYYYmmddTHHMMSS>.log``) gets all of
  that at INFO with dates and logger names, the tools' chatter, the notebook kernels' own stderr
  and, should the run crash, the traceback. It lives under the outputs directory the run writes
  to, so two pipelines (sample, real export) never mix their logs.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Loggers whose INFO (and these WARNINGs) are the tools' chatter: kept in the run log only.
CHATTY = {
    "papermill": logging.WARNING,
    "traitlets": logging.ERROR,
    "nbconvert": logging.ERROR,
    # botocore and s3fs's aiobotocore say where they found the AWS credentials, on every object-store command
    "botocore": logging.WARNING,
    "aiobotocore": logging.WARNING,
}

_active_log: Path | None = None


class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, level in CHATTY.items():
            if record.name == name or record.name.startswith(name + "."):
                return record.levelno >= level
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (not the stream of the moment it was
    configured, which a test harness or a notebook may have closed since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_console(verbose: bool = False) -> None:
    """stderr: puffy's lines and real warnings; DEBUG with ``verbose``. Called once by the CLI."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in [h for h in root.handlers if getattr(h, "_puffy_console", False)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, datefmt="%H:%M:%S"))
    if not verbose:
        handler.addFilter(_ConsoleFilter())
    handler._puffy_console = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def log_path(outputs_dir: Path, label: str, now: datetime | None = None) -> Path:
    return Path(outputs_dir) / "logs" / f"run-{label}-{(now or datetime.now()):%Y%m%dT%H%M%S}.log"


@contextmanager
def run_log(outputs_dir: Path, label: str):
    """Everything logged inside the block also goes to a new log file under ``outputs_dir/logs``;
    yields its path. The notebook kernels started meanwhile write their stderr there too
    (``active_log``)."""
    global _active_log
    path = log_path(outputs_dir, label)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FILE_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    previous, _active_log = _active_log, path
    level = root.level
    if level > logging.INFO or level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield path
    except BaseException as exc:
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)) and not getattr(exc, "exit_code", None):
            # A crash: its traceback belongs in this run's log (not on the console: the CLI prints one line).
            handler.handle(
                logging.LogRecord("puffy", logging.ERROR, __file__, 0, "the run crashed", None, sys.exc_info())
            )
        raise
    finally:
        _active_log = previous
        root.setLevel(level)
        root.removeHandler(handler)
        handler.close()


def active_log() -> Path | None:
    """The log file of the run in progress in this process, if any."""
    return _active_log

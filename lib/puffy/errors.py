"""User-facing errors.

A ``UserError`` is a problem with the user's input (a flag, a params file, a raw file) that the
CLI prints as one actionable line and turns into an exit code, never a traceback.
"""


class UserError(Exception):
    """An error the user can fix; ``str(err)`` is the whole message."""

    exit_code = 2

    def _render_traceback_(self) -> list[str]:
        """How IPython (JupyterLab, papermill) shows it: the one sentence, as the CLI prints it, not a
        traceback through the library."""
        return [f"{type(self).__name__}: {self}"]


class ParamsError(UserError):
    """A params file is missing, is not YAML, or does not validate."""


class InputDataError(UserError):
    """Raw input cannot be read at all (missing directory; no raw file at all when no closed
    start..end range was asked for)."""

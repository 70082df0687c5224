"""The errors a user can cause, and how any error is told in one line. This module imports nothing of alvit.

Each message is one sentence that names what is wrong and the valid choices, so the command
line prints it as is (``alvit: error: ...``) instead of a traceback.
"""


class ConfigError(ValueError):
    """A configuration a user wrote that alvit cannot run; the message says how to fix it."""


class ResultsError(RuntimeError):
    """A results file that cannot be read; the message names the file and what to do."""


class TrainingError(RuntimeError):
    """Training or prediction that cannot go on without damaging results (a non-finite loss, the
    device out of memory); the message names the round and epoch and says what to change."""


def one_line(err: BaseException) -> str:
    """``ErrorClass: message`` on one line, for failure records and one-sentence errors.

    A notebook that failed under papermill names the error raised inside it (its ``ename`` and
    ``evalue``), not papermill's wrapper; any other error gives the first line of its message,
    where Python's exceptions say what went wrong (the rest is detail or advice).
    """
    name, message = getattr(err, "ename", None), getattr(err, "evalue", None)
    if not name:
        name, message = err.__class__.__name__, str(err)
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    return f"{name}: {lines[0] if lines else ''}"

"""The errors a user can cause. Every module imports these; this module imports nothing of alvit.

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

"""The error style of every avtok training CLI (tokenizer, generator, the main job): ``friendly`` wraps a Typer
command so a user mistake prints one ``error:`` line (exit code 2), a bug exit 1, tracebacks only with
``--debug`` (``avtok.eval.cli_errors``). Kept apart from the commands so a CLI can import it without their
table dependencies (polars)."""

from __future__ import annotations

from avtok.eval.cli_errors import DEFAULT_USER_ERRORS, cli_errors
from avtok.train.trainer import TrainingDiverged

__all__ = ["CLI_HINTS", "USER_ERRORS", "friendly"]

# Library messages name Python arguments; on these command lines they are flags (avtok.eval.cli_errors).
CLI_HINTS = {
    "pass duration=None": "leave out --duration",
    "shorten duration or": "lower --duration or",
    "shorten duration": "lower --duration",
    "pass allow_silent=True to get silent audio": "pass a file with sound",
    "pass fps=... explicitly": "re-encode the file with a constant frame rate",
}
# user mistakes (one `error:` line, exit code 2); a diverged run is stopped with its fix in the message
USER_ERRORS = (*DEFAULT_USER_ERRORS, TrainingDiverged)
friendly = cli_errors(hints=CLI_HINTS, user_errors=USER_ERRORS)

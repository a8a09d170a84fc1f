"""One error style for every avtok command line: ``error: <one line>`` on stderr, exit code 2 for user
mistakes, the full traceback only with ``--debug``.

Usage (any Typer app)::

    from avtok.eval.cli_errors import cli_errors

    @app.command("recon")
    @cli_errors(hints={"pass allow_silent=True": "pass --allow-silent"})
    def recon(folder: Path, ...) -> None:
        ...

``cli_errors`` adds a ``--debug`` option to the decorated command (Typer reads the wrapper's
signature) and maps exceptions to exit codes:

- a *user error* (``user_errors``: by default ``UserError``, ``ValueError`` — which covers
  ``avtok.media_io.MediaError`` — ``FileNotFoundError``, ``NotADirectoryError``,
  ``IsADirectoryError``, ``PermissionError``, ``ModuleNotFoundError`` for a missing extra) prints
  ``error: <message>`` as one line and exits with ``USER_ERROR`` (2);
- any other exception is a bug: ``error: internal error (<Type>: <message>); rerun with --debug for
  the traceback`` and exit code 1;
- with ``--debug`` (or ``AVTOK_DEBUG=1`` in the environment) the traceback is printed to stderr
  first, then the same line and exit code;
- ``typer.Exit`` / ``click`` exceptions and ``KeyboardInterrupt`` pass through untouched.

``hints`` rewrites fixes written for the Python API into the command's flags (plain substring
replacement, applied in order), e.g. ``{"pass duration=None": "leave out --duration"}``. Library code
keeps raising ordinary exceptions whose message names the input and the fix; only the CLI layer
decides how they are shown.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Annotated, TypeVar

import click
import typer

__all__ = ["UserError", "DEFAULT_USER_ERRORS", "USER_ERROR", "cli_errors", "error_line"]

USER_ERROR = 2  # exit code of a user mistake (click uses 2 for usage errors too)
INTERNAL_ERROR = 1
DEBUG_ENV = "AVTOK_DEBUG"

F = TypeVar("F", bound=Callable)


class UserError(ValueError):
    """A mistake the user fixes (bad input, bad flag combination); the message names the input and the flag."""


DEFAULT_USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
    ModuleNotFoundError,
)

_PASS_THROUGH = (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, KeyboardInterrupt)


def error_line(exc: BaseException, hints: Mapping[str, str] | None = None) -> str:
    """The exception's message as one line (whitespace runs collapsed) with ``hints`` applied."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError):  # KeyError's str() is the repr of the key: say what it is
        text = f"missing key {text}"
    for old, new in (hints or {}).items():
        text = text.replace(old, new)
    return text


def _with_debug_parameter(fn: Callable, wrapper: Callable) -> None:
    """Expose ``fn``'s parameters plus a keyword-only ``debug`` flag on ``wrapper`` (read by Typer)."""
    sig = inspect.signature(fn, eval_str=True)  # real objects: Typer resolves hints in the wrapper's globals
    if "debug" in sig.parameters:
        raise TypeError(f"{fn.__name__}: already has a 'debug' parameter; cli_errors adds its own --debug")
    debug = inspect.Parameter(
        "debug", inspect.Parameter.KEYWORD_ONLY, default=False,
        annotation=Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")],
    )
    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), debug])
    wrapper.__annotations__ = {name: p.annotation for name, p in wrapper.__signature__.parameters.items()
                               if p.annotation is not inspect.Parameter.empty}


def cli_errors(
    *,
    user_errors: tuple[type[BaseException], ...] = DEFAULT_USER_ERRORS,
    hints: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Decorator for a Typer command: user errors -> ``error: ...`` + exit 2; ``--debug`` shows tracebacks."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, debug: bool = False, **kwargs):
            debug = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
            try:
                return fn(*args, **kwargs)
            except _PASS_THROUGH:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure gets the one-line form
                user = isinstance(exc, user_errors)
                if debug:
                    traceback.print_exc(file=sys.stderr)
                line = error_line(exc, hints)
                if not user:
                    line = (f"internal error ({type(exc).__name__}: {line}); "
                            + ("see the traceback above" if debug else "rerun with --debug for the traceback"))
                typer.echo(f"error: {line}", err=True)
                raise typer.Exit(code=USER_ERROR if user else INTERNAL_ERROR) from exc

        _with_debug_parameter(fn, wrapper)
        del wrapper.__wrapped__  # Typer must read the signature that includes --debug
        return wrapper  # type: ignore[return-value]

    return decorate

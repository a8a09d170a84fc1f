"""cli_errors: the reusable error style for avtok's Typer apps."""

from pathlib import Path
from typing import Annotated

import typer
from typer.testing import CliRunner

from avtok.eval.cli_errors import UserError, cli_errors
from avtok.media_io import MediaError

app = typer.Typer()


@app.command("run")
@cli_errors(hints={"pass allow_silent=True": "pass --allow-silent"})
def run(
    what: Annotated[str, typer.Argument(help="user | media | bug | ok")],
    data: Annotated[Path, typer.Option(help="A file.")] = Path("x.mp4"),
) -> None:
    if what == "user":
        raise UserError(f"--data {data}: empty\nfolder; put clips there")
    if what == "media":
        raise MediaError("no audio stream; fix: pass allow_silent=True to get silence", path=data)
    if what == "bug":
        raise KeyError("modalities")
    typer.echo(f"ok {data}")


@app.command("other")
def other() -> None:  # a second command keeps Typer in multi-command mode
    pass


def test_user_errors_are_one_line_with_exit_2_and_cli_hints():
    r = CliRunner().invoke(app, ["run", "user", "--data", "d"])
    assert r.exit_code == 2 and r.output == "error: --data d: empty folder; put clips there\n"
    r = CliRunner().invoke(app, ["run", "media"])
    assert r.exit_code == 2 and r.output == "error: x.mp4: no audio stream; fix: pass --allow-silent to get silence\n"


def test_bugs_exit_1_and_debug_shows_the_traceback(monkeypatch):
    r = CliRunner().invoke(app, ["run", "bug"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.startswith("error: internal error (KeyError: missing key 'modalities'); rerun with --debug")
    r = CliRunner().invoke(app, ["run", "bug", "--debug"])
    assert r.exit_code == 1 and "Traceback (most recent call last)" in r.output and "KeyError" in r.output
    monkeypatch.setenv("AVTOK_DEBUG", "1")
    r = CliRunner().invoke(app, ["run", "user"])
    assert r.exit_code == 2 and "Traceback" in r.output


def test_success_and_options_pass_through():
    r = CliRunner().invoke(app, ["run", "ok", "--data", "y.mp4"])
    assert r.exit_code == 0 and r.output == "ok y.mp4\n"
    assert "--debug" in CliRunner().invoke(app, ["run", "--help"]).output

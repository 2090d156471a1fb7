"""`nbgov` command line: run, show, replay, verify, sign, export, graph.

A thin face over nbgov.replay: parse, call, print, map outcomes to exit codes.
Exit 0 = fine, 1 = a divergence / tampering / failed cell, 2 = could not run (any
NbgovError: one line on stderr, never a traceback). Everything printed that came
from a notebook goes through nbgov.replay.safe_text first.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from nbgov import __version__
from nbgov.errors import NbgovError
from nbgov.lineage.user_files import check_apart, check_writable, write_replacing
from nbgov.replay.safe_text import for_terminal

NOTEBOOK = click.argument("notebook", type=click.Path(path_type=Path, dir_okay=True))


def usage_line(exc: click.UsageError, ctx: click.Context) -> str:
    """click's usage error as one line naming the command, what was wrong (click's message:
    the option, the missing argument, the accepted choices) and where to look; click's own
    block (usage, hint, blank line, error) is four to seven lines."""
    if exc.ctx is not None:
        path = exc.ctx.command_path
    elif ctx.invoked_subcommand:  # the parser's errors (`--timeout` with no value) carry no context
        path = f"{ctx.command_path} {ctx.invoked_subcommand}"
    else:
        path = ctx.command_path
    message = " ".join(exc.format_message().split()).removesuffix(".")  # a choices list spans lines
    message = message[:1].lower() + message[1:]
    return for_terminal(f"{path}: error: {message} (see {path} --help)", keep_newlines=False)


class NbgovGroup(click.Group):
    """Turns user mistakes into one line on stderr and exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """A mistake in nbgov's own options (`nbgov --bogus`) is one line too; bare `nbgov`
        still prints the help."""
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            click.echo(usage_line(exc, ctx), err=True)
            ctx.exit(exc.exit_code)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # a subcommand's bad option or argument, an unknown command
            click.echo(usage_line(exc, ctx), err=True)
            ctx.exit(exc.exit_code)
        except NbgovError as exc:
            click.echo(f"nbgov: error: {for_terminal(str(exc), keep_newlines=False)}", err=True)
            ctx.exit(2)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("nbgov: interrupted", err=True)
            ctx.exit(2)
        except Exception as exc:
            if os.environ.get("NBGOV_DEBUG"):
                raise
            first = for_terminal(str(exc).splitlines()[0], keep_newlines=False) if str(exc) else ""
            click.echo(f"nbgov: error: {type(exc).__name__}: {first} (set NBGOV_DEBUG=1 for details)",
                       err=True)
            ctx.exit(2)


def _console() -> Console:
    """The terminal's width (80 when output is not a terminal); markup and emoji codes off,
    so notebook text is printed as the text it is."""
    return Console(soft_wrap=False, markup=False, emoji=False, highlight=False)


def _write_or_print(text: str, output: Path | None) -> None:
    """Print ``text``, or write it as ``output``; callers refuse an ``output`` that is the
    notebook or its lineage (``check_apart``) before doing the work."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        write_replacing(output, text.encode("utf-8"))  # never through a symlink
        click.echo(f"wrote {for_terminal(str(output))}", err=True)


def _export_formats() -> str:
    from nbgov.replay.export_formats import FORMATS_HELP

    return "\b\n" + FORMATS_HELP.replace("\n\n", "\n\n\b\n")


@click.group(name="nbgov", cls=NbgovGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbgov")
def cli() -> None:
    """Review and reproduce notebooks from their recorded lineage."""


@cli.command()
@NOTEBOOK
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the executed notebook here (default: in place).")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds allowed per cell.")
@click.option("--kernel", "kernel_name", help="Kernel spec to use (default: the notebook's).")
@click.option("--allow-errors", is_flag=True, help="Keep running after a cell fails.")
@click.option("--print-outputs", is_flag=True, help="Print each cell's text output after the run.")
def run(notebook: Path, output: Path | None, timeout: float, kernel_name: str | None,
        allow_errors: bool, print_outputs: bool) -> None:
    """Execute NOTEBOOK headless on a real kernel, recording lineage."""
    from nbgov.lineage import notebook_meta
    from nbgov.replay.outputs import cell_texts
    from nbgov.replay.runner import run_notebook
    from nbgov.widgets import plural

    if output is not None:  # over the notebook itself is allowed: in place is the default
        check_apart(output, notebook, "the executed notebook", in_place_ok=True)
    summary = run_notebook(notebook, output, timeout, kernel_name, allow_errors)
    if print_outputs:
        for count, text in cell_texts(notebook_meta.read_notebook(summary.output)):
            click.echo(f"[{count}]\n{for_terminal(text)}\n")
    errors = sum(1 for e in summary.recorded if e["body"].get("status") == "error")
    click.echo(f"ran {plural(summary.cells_run, 'cell')} of {for_terminal(notebook.name)} in {summary.seconds:.2f}s; "
               f"recorded {plural(len(summary.recorded), 'execution')} ({errors} failed) in "
               f"{for_terminal(str(summary.sidecar))}")
    click.echo(f"wrote {for_terminal(str(summary.output))}")
    if summary.error:
        click.echo(f"stopped at a failing cell: {for_terminal(summary.error, keep_newlines=False)}", err=True)
        sys.exit(1)


@cli.command()
@NOTEBOOK
@click.option("--json", "as_json", is_flag=True, help="Print the log as JSON instead of a table.")
def show(notebook: Path, as_json: bool) -> None:
    """Show the recorded execution log of NOTEBOOK, with stale flags and why."""
    from nbgov.replay.report import log_json, print_log
    from nbgov.replay.source import load_log

    log = load_log(notebook)
    if as_json:
        click.echo(json.dumps(log_json(log), indent=2))  # ASCII: no raw control or bidi character
        return
    print_log(log, _console())


@cli.command()
@NOTEBOOK
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write a self-contained HTML report here.")
@click.option("--until", type=click.IntRange(min=1), help="Replay only the first N recorded executions.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds allowed per step.")
@click.option("--kernel", "kernel_name", help="Kernel spec to use (default: the notebook's).")
@click.option("--unverified", is_flag=True,
              help="Replay even a log that `nbgov verify` rejects (the result says so).")
@click.option("--allow-unverifiable", is_flag=True,
              help="Exit 0 when steps whose values cannot be compared (weak fingerprints) are the only "
                   "ones not reproduced.")
@click.option("--allowed-signers", type=click.Path(path_type=Path),  # not a file: refused in one line
              help="Require signatures: replay only when `nbgov verify --allowed-signers FILE` passes, and "
                   "only executions up to the newest head one of these signers signed.")
def replay(notebook: Path, report: Path | None, until: int | None, timeout: float,
           kernel_name: str | None, unverified: bool, allow_unverifiable: bool,
           allowed_signers: Path | None) -> None:
    """Re-run NOTEBOOK's recorded executions in a fresh kernel and compare.

    Exit 0: every step reproduced; 1: a divergence (or a step that could not be
    compared); 2: it could not run, or the log does not verify (with --allowed-signers:
    does not verify with those signers).
    """
    from nbgov.replay.replayer import replay as do_replay
    from nbgov.replay.replayer import require_verified
    from nbgov.replay.report import print_replay, replay_html
    from nbgov.replay.source import load_log

    if report is not None:  # refused now, not after the replay
        check_apart(report, notebook, "the report")
        check_writable(report)
    warning = require_verified(notebook, unverified, allowed_signers, until)
    if warning:
        click.echo(f"nbgov: WARNING: {for_terminal(warning, keep_newlines=False)}", err=True)
    result = do_replay(load_log(notebook), until=until, timeout=timeout, kernel_name=kernel_name,
                       unverified=warning)
    print_replay(result, _console())
    if report is not None:
        write_replacing(report, replay_html(result).encode("utf-8"))
        click.echo(f"wrote {for_terminal(str(report))}")
    sys.exit(result.exit_status(allow_unverifiable))


@cli.command()
@NOTEBOOK
@click.option("--require-sidecar", is_flag=True, help="Fail (exit 1) when the sidecar is missing or empty.")
@click.option("--allowed-signers", type=click.Path(path_type=Path),  # not a file: refused in one line
              help="Also check signed heads against this file (git's gpg.ssh.allowedSignersFile format); "
                   "at least one valid signature is then required.")
def verify(notebook: Path, require_sidecar: bool, allowed_signers: Path | None) -> None:
    """Check the hash chain and the notebook metadata against the sidecar.

    Exit 0: intact; 1: tampered, corrupted or inconsistent; 2: it could not run.
    """
    from nbgov.lineage.store import SidecarRefused
    from nbgov.replay.report import print_verify
    from nbgov.replay.verify import VerifyResult
    from nbgov.replay.verify import verify as do_verify

    try:
        result = do_verify(notebook, require_sidecar=require_sidecar, allowed_signers=allowed_signers)
    except SidecarRefused as exc:
        # lineage reached through a symlink (a linked .nbgov/ folder, met by the signature
        # check) is unsafe lineage, as a linked sidecar file is: tampered (1), not "could not run"
        result = VerifyResult(notebook, None, problems=[f"sidecar refused: {exc}"])
    print_verify(result, _console())
    sys.exit(result.exit_code)


@cli.command()
@NOTEBOOK
@click.option("--key", type=click.Path(path_type=Path),  # not a file (a folder, a FIFO): refused in one line
              default=lambda: str(Path("~/.ssh/id_ed25519").expanduser()), show_default="~/.ssh/id_ed25519",
              help="SSH private key (or a public key whose private half is in ssh-agent).")
def sign(notebook: Path, key: Path) -> None:
    """Sign the head of NOTEBOOK's verified lineage with an SSH key (git's signature format).

    The signature is stored beside the sidecar; `nbgov verify --allowed-signers FILE`
    checks it, and so does `ssh-keygen -Y verify -n nbgov`.
    """
    from nbgov.replay.sign import sign as do_sign

    outcome = do_sign(notebook, key)
    click.echo(f"signed entry {outcome.head.seq} of {for_terminal(notebook.name)} "
               f"(hash {outcome.head.hash[:16]}) with {for_terminal(outcome.key_description)}")
    for path in outcome.files:
        click.echo(f"wrote {for_terminal(str(path))}")


@cli.command(epilog=_export_formats())
@NOTEBOOK
@click.option("--format", "fmt", type=click.Choice(["openlineage", "openlineage-json", "prov"]), required=True,
              help="openlineage: run events as JSON Lines; openlineage-json: one JSON array; prov: W3C PROV-JSON.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to a file.")
def export(notebook: Path, fmt: str, output: Path | None) -> None:
    """Export NOTEBOOK's lineage as OpenLineage events or W3C PROV-JSON."""
    from nbgov.lineage.record import load_entries
    from nbgov.replay.export import openlineage_events, prov_document
    from nbgov.replay.source import load_log

    if output is not None:
        check_apart(output, notebook, "the export")
    log = load_log(notebook)
    entries, problems = load_entries(log.entries)
    if problems:
        raise NbgovError(f"{notebook}: {problems[0]}; run `nbgov verify` for the whole log")
    name = log.notebook.name
    if fmt == "openlineage":
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in openlineage_events(name, entries))
    elif fmt == "openlineage-json":
        text = json.dumps(openlineage_events(name, entries), indent=2, sort_keys=True) + "\n"
    else:
        text = json.dumps(prov_document(name, entries), indent=2) + "\n"
    _write_or_print(text, output)


@cli.command()
@NOTEBOOK
@click.option("--format", "fmt", type=click.Choice(["dot", "svg"]), default="dot", show_default=True,
              help="svg uses graphviz `dot` when installed, else nbgov's own drawing.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to a file.")
def graph(notebook: Path, fmt: str, output: Path | None) -> None:
    """Print NOTEBOOK's lineage graph (executions, variables, files, models)."""
    from nbgov.replay.graph import build_graph, render_svg, to_dot
    from nbgov.replay.report import stale_of
    from nbgov.replay.source import load_log

    if output is not None:
        check_apart(output, notebook, "the graph")
    log = load_log(notebook)
    lineage = build_graph(log.execution_records(), stale_of(log))
    render: Callable[[Any], str] = to_dot if fmt == "dot" else render_svg
    _write_or_print(render(lineage), output)


def main() -> None:
    """Console-script entry point (`nbgov = nbgov.cli:main`)."""
    cli(prog_name="nbgov")


if __name__ == "__main__":
    main()

"""Command-line entry point: ``main(argv=None) -> int``, one module per command.

Only the environment (or the requested report) goes to stdout; notes and
warnings go to stderr. A ``BuildpolicyError`` is printed without a traceback
and mapped to its exit code; an unexpected error keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from buildpolicy.errors import EXIT_USAGE, BuildpolicyError

COMMANDS = ("env", "exec", "explain", "facts", "check")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 itself; keep the message format ours
        raise BuildpolicyError(f"{self.prog}: {message}", EXIT_USAGE)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", help="cargo profile to decide for (default: the profile file's default_profile)")
    parser.add_argument("--facts", metavar="FILE", help="JSON or TOML file overriding facts for this run")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KNOB=VALUE", help="set a knob (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no warnings on stderr")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; the cargo argv after ``--`` is split off before parsing."""
    parser = _Parser(prog="buildpolicy", description="Declarative build policy for cargo.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    env = sub.add_parser("env", help="print the environment")
    _common(env)
    env.add_argument("--shell", default="posix", help="bash, zsh, fish, posix (default) or powershell")
    env.add_argument("--format", default="sh", help="sh (default), json, dotenv or github")

    run = sub.add_parser("exec", help="run a command with the environment")
    _common(run)
    run.add_argument("--dry-run", action="store_true", help="print the plan as JSON instead of running")

    explain = sub.add_parser("explain", help="why every value is what it is")
    _common(explain)
    explain.add_argument("name", nargs="?", help="only this decision, variable, knob, rule or fact")
    explain.add_argument("--format", default="text", choices=("text", "json"))

    facts = sub.add_parser("facts", help="print the facts model")
    _common(facts)
    facts.add_argument("names", nargs="*", help="only these facts")
    facts.add_argument("--format", default="text", choices=("text", "json"))

    check = sub.add_parser("check", help="validate the profile and policy files")
    _common(check)
    check.add_argument("paths", nargs="*", help="files to check (default: every layer's files)")
    return parser


def split_argv(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``argv`` at the first ``--``: buildpolicy's own arguments, then the command."""
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, None


def make_request(args, command_argv, command: str, **extra):
    """Build the engine ``Request`` from parsed arguments and the caller's environment."""
    from buildpolicy.engine import Request

    overrides = None
    if args.facts:
        from buildpolicy.facts import load_facts_file

        overrides = load_facts_file(Path(args.facts))
    cargo_argv = tuple(command_argv) if command_argv else None
    return Request(
        cwd=Path.cwd(),
        environ=dict(os.environ),
        command=command,
        cargo_argv=cargo_argv,
        profile_flag=args.profile,
        cli_sets=tuple(args.sets),
        fact_overrides=overrides,
        **extra,
    )


def print_warnings(warnings, quiet: bool) -> None:
    """Warnings go to stderr (never stdout, which belongs to `eval`)."""
    if quiet:
        return
    for warning in warnings:
        print(f"buildpolicy: warning: {warning}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (``exec`` replaces the process instead)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, command_argv = split_argv(argv)
    try:
        parser = build_parser()
        args = parser.parse_args(own)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        from importlib import import_module

        module = import_module(f"buildpolicy.commands.{args.command.replace('-', '_')}_cmd")
        return module.run(args, command_argv)
    except BuildpolicyError as exc:
        for message in exc.messages:
            print(f"buildpolicy: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

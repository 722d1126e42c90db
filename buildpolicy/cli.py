"""Command-line entry point: ``main(argv=None) -> int``, one module per command.

Only the environment (or the requested report) goes to stdout; notes and
warnings go to stderr. A ``BuildpolicyError`` is printed without a traceback
and mapped to its exit code; an unexpected error keeps its traceback.
"""

from __future__ import annotations

import sys

from buildpolicy.errors import EXIT_USAGE, BuildpolicyError

TYPE_CHECKING = False  # not `from typing import`: typing alone costs 2 ms of every prompt

if TYPE_CHECKING:  # pragma: no cover - typing only
    import argparse

# Each command lives in buildpolicy/commands/<name>_cmd.py with HELP,
# add_arguments(parser) and run(args, command_argv) -> int. One per line.
COMMANDS = (
    "env",
    "exec",
    "explain",
    "facts",
    "check",
    "test",
    "init",
    "set",
    "unset",
    "allow",
    "deny",
    "schema",
    "doctor",
    "log",
    "hook",
)


def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # argparse exits 2 itself; keep the message format ours
            raise BuildpolicyError(f"{self.prog}: {message}", EXIT_USAGE)

    return Parser


def _command_module(name: str):
    from importlib import import_module

    return import_module(f"buildpolicy.commands.{name.replace('-', '_')}_cmd")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; the cargo argv after ``--`` is split off before parsing.

    ``only`` imports just that command's module (the hot path needs one).
    """
    parser_class = _parser_class()
    parser = parser_class(prog="buildpolicy", description="Declarative build policy for cargo.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)  # listed for usage, arguments not needed
            continue
        module = _command_module(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def split_argv(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``argv`` at the first ``--``: buildpolicy's own arguments, then the command."""
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, None


# `env` runs at every shell prompt. Building argparse parsers pulls in gettext,
# locale and shutil (about 9 ms), so the common `env` command lines are parsed
# here; anything else (help, an unknown flag, a typo) goes to argparse, which
# gives the usual messages.
_ENV_VALUED = {"--shell": "shell", "--format": "format", "--profile": "profile", "--facts": "facts", "--set": "sets"}


def fast_env_args(own: list[str]):
    """Parse ``env [flags]`` without argparse (a namespace), or return None to let argparse do it."""
    if not own or own[0] != "env":
        return None
    from types import SimpleNamespace  # after the replay, which needs none of it

    args = SimpleNamespace(command="env", shell="posix", format="sh", profile=None, facts=None, sets=[], quiet=False,
                           hook=False)
    words = iter(own[1:])
    for word in words:
        name, sep, value = word.partition("=")
        if word in ("-q", "--quiet"):
            args.quiet = True
        elif word == "--hook":
            args.hook = True
        elif name in _ENV_VALUED:
            if not sep:
                value = next(words, None)
                if value is None or value.startswith("-"):
                    return None
            dest = _ENV_VALUED[name]
            if dest == "sets":
                args.sets.append(value)
            else:
                setattr(args, dest, value)
        else:
            return None
    return args


_COMMON_VALUED = ("--profile", "--facts", "--set")
_COMMON_FLAGS = ("-q", "--quiet")


def common_flags_after_command(own: list[str]) -> list[str]:
    """Let the common flags stand before the command too: ``buildpolicy -q exec -- …``.

    Leading common flags (with their values) move behind the command word;
    anything else before it is left for argparse to report.
    """
    moved: list[str] = []
    index = 0
    while index < len(own) and own[index] not in COMMANDS:
        word = own[index]
        name = word.partition("=")[0]
        if word in _COMMON_FLAGS or (name in _COMMON_VALUED and "=" in word):
            moved.append(word)
            index += 1
        elif word in _COMMON_VALUED and index + 1 < len(own):
            moved += own[index:index + 2]
            index += 2
        else:
            return own
    if not moved or index >= len(own):
        return own
    return [own[index], *moved, *own[index + 1:]]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, command_argv = split_argv(argv)
    own = common_flags_after_command(own)
    try:
        if own[:1] == ["env"]:
            # The warm path: the previous identical `env`'s output, if nothing it
            # depended on changed (buildpolicy.replay). Needs no plugins, no policies.
            from buildpolicy.replay.check import try_replay

            status = try_replay(argv)
            if status is not None:
                return status
        args = fast_env_args(own)
        if args is None:
            wanted = next((word for word in own if word in COMMANDS), None)
            args = build_parser(only=wanted).parse_args(own)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return EXIT_USAGE
        args.raw_argv = argv  # `env` records its output under the invocation (buildpolicy.replay)
        return _command_module(args.command).run(args, command_argv)
    except BuildpolicyError as exc:
        for message in exc.messages:
            print(f"buildpolicy: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

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
    "get",
    "knobs",
    "status",
    "allow",
    "deny",
    "schema",
    "doctor",
    "log",
    "cache",
    "hook",
    "completions",
    "man",
)


def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # argparse exits 2 itself; keep the message format ours
            # main() prints "buildpolicy: error: "; a subcommand's parser names itself.
            command = self.prog.partition(" ")[2]
            raise BuildpolicyError(f"{command + ': ' if command else ''}{message}{_did_you_mean(self, message)}",
                                   EXIT_USAGE)

    return Parser


def _did_you_mean(parser, message: str) -> str:
    """A "did you mean" for the first mistyped flag of an "unrecognized arguments" error
    (argparse reports a subcommand's unknown flags from the top-level parser, so every
    command's flags are candidates), or for a mistyped command."""
    from buildpolicy.errors import closest

    if "invalid choice: '" in message:
        word = message.partition("invalid choice: '")[2].partition("'")[0]
        close = closest(word, COMMANDS)
        return f" (did you mean {close}?)" if close else ""
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return ""
    parsers = [parser]
    for action in parser._actions:
        if hasattr(action, "_name_parser_map"):  # the subcommands
            parsers += list(action.choices.values())
    known = sorted({option for each in parsers for action in each._actions for option in action.option_strings
                    if option.startswith("--")})
    for word in message[len(prefix):].split():
        if word.startswith("--"):
            close = closest(word.partition("=")[0], known)
            if close:
                return f" (did you mean {close}?)"
    return ""


# Commands that take a command line after `--`, and how their usage line shows it.
COMMAND_ARGV_USAGE = {"exec": "[--] CMD...", "env": "[-- CARGO-ARGS...]", "explain": "[-- CARGO-ARGS...]",
                      "doctor": "[-- CARGO-ARGS...]"}


def _command_module(name: str):
    from importlib import import_module

    return import_module(f"buildpolicy.commands.{name.replace('-', '_')}_cmd")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; the cargo argv after ``--`` is split off before parsing.

    ``only`` imports just that command's module (the hot path needs one).
    """
    import argparse

    parser_class = _parser_class()
    parser = parser_class(prog="buildpolicy", description="Declarative build policy for cargo.",
                          usage="buildpolicy [-C DIR] [--version] COMMAND [ARGS...] [-- CMD...]")
    # Handled by main() before parsing (_leading_global_options); listed here for --help.
    parser.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS,
                        help="run as if started in DIR (as git -C, cargo -C)")
    parser.add_argument("--version", action="store_true", default=argparse.SUPPRESS, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class, prog="buildpolicy")
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)  # listed for usage, arguments not needed
            continue
        module = _command_module(name)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        if name in COMMAND_ARGV_USAGE:
            usage = command_parser.format_usage().removeprefix("usage: ").rstrip()
            command_parser.usage = f"{usage} {COMMAND_ARGV_USAGE[name]}"
    return parser


def split_argv(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``argv`` at the first ``--``: buildpolicy's own arguments, then the command.

    Without ``--``, ``exec``'s first word that is not one of its own options starts
    the command (``buildpolicy exec cargo build -q``: ``-q`` is cargo's), and so does a
    ``cargo`` word for ``env``, ``explain`` and ``doctor`` (``explain cargo build --release``).
    """
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    start = _implicit_command_start(argv)
    if start is not None:
        return argv[:start], argv[start:]
    return argv, None


# The options that take a value, of the commands that take a command line: their
# values are not the start of the command. (A test checks this against the parsers.)
VALUED_OPTIONS = frozenset({"-C", "--profile", "--facts", "--set", "--shell", "--format", "--color"})


def _implicit_command_start(argv: list[str]) -> int | None:
    """Where the command line starts in ``argv`` without ``--``, or None (see ``split_argv``)."""
    index, command = 0, None
    while index < len(argv):
        word = argv[index]
        if command is None and word in COMMANDS:
            command = word
            if command not in COMMAND_ARGV_USAGE:
                return None
        elif word in VALUED_OPTIONS:
            index += 1  # its value
        elif not word.startswith("-") and command is not None:
            is_cargo = word == "cargo" or word.endswith("/cargo") or word.startswith("cargo-")
            return index if command == "exec" or is_cargo else None
        index += 1
    return None


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


def _leading_global_options(argv: list[str]) -> list[str] | None:
    """Apply ``-C DIR`` (change directory first) and ``--version`` (print, return None)
    given before the command; return the rest of ``argv``."""
    while argv:
        if argv[0] == "--version":
            from buildpolicy import __version__

            print(f"buildpolicy {__version__}")
            return None
        if argv[0] == "-C" or (argv[0].startswith("-C") and len(argv[0]) > 2):
            directory, argv = (argv[1] if len(argv) > 1 else None, argv[2:]) if argv[0] == "-C" else (argv[0][2:], argv[1:])
            if directory is None:
                raise BuildpolicyError("-C needs a directory: buildpolicy -C DIR COMMAND")
            import os

            try:
                os.chdir(directory)
            except OSError as exc:
                raise BuildpolicyError(f"-C {directory}: {exc.strerror or exc}") from None
            continue
        break
    return argv


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = _leading_global_options(argv)
    except BuildpolicyError as exc:
        print(f"buildpolicy: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if argv is None:
        return 0  # --version printed
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
        args.build_parser = build_parser  # `completions` and `man` describe the whole command line
        return _command_module(args.command).run(args, command_argv)
    except BuildpolicyError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def run() -> None:
    """The ``buildpolicy`` command: :func:`main`, then exit without tearing the interpreter
    down when nothing is left to do at exit (see :func:`exit_promptly`)."""
    exit_promptly(main())


def exit_promptly(status) -> None:
    """Exit with ``status``, skipping the interpreter's finalization when that loses nothing.

    Tearing down the modules of a full evaluation costs a prompt milliseconds (a bare
    ``python -c pass`` spends a sixth of its time there, DESIGN §10), for nothing: the
    output is written and no file is left open for writing. The fast way is taken only when
    the streams flush cleanly, no ``atexit`` callback is registered (``tempfile``'s
    cleanups, ``logging``'s shutdown and ``weakref.finalize`` register one) and no
    non-daemon thread is still running; otherwise ``sys.exit`` as usual.
    """
    import atexit  # a built-in module: no import cost

    code = 0 if status is None else status
    try:
        for stream in {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s}.values():
            stream.flush()  # the original streams too: a plugin may have replaced sys.stdout
    except (OSError, ValueError, AttributeError):
        sys.exit(status)
    threading = sys.modules.get("threading")
    threads_left = threading is not None and any(
        thread is not threading.main_thread() and not thread.daemon for thread in threading.enumerate())
    ncallbacks = getattr(atexit, "_ncallbacks", None)
    if not isinstance(code, int) or threads_left or ncallbacks is None or ncallbacks():
        sys.exit(status)
    import os

    os._exit(code)  # the kernel keeps the low 8 bits, as for sys.exit


"""``buildpolicy env``: print the environment for ``eval`` (DESIGN §7)."""

from __future__ import annotations

import sys

from buildpolicy.commands.common import add_common, make_request
from buildpolicy.output.notes import warnings_text
from buildpolicy.errors import EXIT_IO_ERROR, BuildpolicyError


HELP = "print the environment for eval"


def add_arguments(parser) -> None:
    """This command's arguments."""
    add_common(parser)
    from buildpolicy.output.render import FORMATS, SHELLS

    # Checked by the renderer (plugins add formats); the lists are for completions.
    parser.add_argument("--shell", default="posix", help="bash, zsh, fish, posix (default) or powershell"
                        ).completion_choices = SHELLS
    parser.add_argument("--format", default="sh", help="sh (default), json, dotenv or github").completion_choices = FORMATS
    parser.add_argument("--hook", action="store_true",
                        help="as run by the prompt hook (`buildpolicy hook`): outside a project (hook_scope knob) "
                             "and when the run fails, restore what the shell had before")



def run(args, command_argv) -> int:
    """Evaluate and print; nothing reaches stdout unless the whole run succeeded."""
    from buildpolicy.engine.pipeline import evaluate
    from buildpolicy.output.render import FORMATS, FORMATS_WITHOUT_UNSET, render_env
    from buildpolicy.output.said import ordinary, to_say_for

    hook = getattr(args, "hook", False)
    try:
        result = evaluate(make_request(args, command_argv, "env", emit_state=args.format == "sh", hook=hook))
    except BuildpolicyError:
        if hook:
            _restore_previous(args)
        raise
    if args.format in FORMATS:
        if args.format in FORMATS_WITHOUT_UNSET and result.unset:
            result.warnings.append(f"the {args.format} format cannot unset variables: {', '.join(result.unset)} left as they are")
        text = render_env(result.set_env, result.unset, shell=args.shell, fmt=args.format)
    else:
        text = result.plugins.render_env(set_env=result.set_env, unset=result.unset, shell=args.shell, fmt=args.format)
        if text is None:
            render_env({}, [], shell=args.shell, fmt=args.format)  # raises the "allowed formats" error
        # A plugin that failed to render before another one did is reported too.
        result.warnings.extend(w for w in result.plugins.warnings if w not in result.warnings)
    stderr = "" if args.quiet else warnings_text(to_say_for(result), args.quiet)
    if stderr:
        sys.stderr.write(stderr)
        sys.stderr.flush()
    data = text.encode("utf-8", "surrogateescape")
    write_stdout(data)
    summary = _summary(args, result)
    if summary and _stderr_is_terminal():
        sys.stderr.write(summary)
        sys.stderr.flush()
    if not result.replay_blockers and args.format in FORMATS:
        # A replay is the same situation: it repeats the ordinary warnings, not the handled ones.
        _record_for_replay(args.raw_argv, result, data, warnings_text(ordinary(result.warnings), args.quiet), summary)
    return 0


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except ValueError:  # closed
        return False


def _summary(args, result) -> str:
    """The one-line summary of what this output changes in the shell (for a person at a
    terminal: printed only there), or "" when it changes nothing or with ``-q``."""
    import os

    from buildpolicy.output.summary import changes_environment, summary_line

    if args.quiet or args.format != "sh" or not changes_environment(result, os.environ):
        return ""
    if not result.decisions:  # the prompt hook outside a project: only restoring
        return "buildpolicy: unloaded (outside a project)\n"
    return summary_line(result)


def _restore_previous(args) -> None:
    """For the prompt hook when the run fails (an untrusted project, a bad knob): undo
    what a previous ``env`` exported, so leaving one project for a refused one does
    not keep the first one's variables. The error still goes to stderr and the exit
    status stays; what is printed is a whole environment, the shell's own."""
    import os

    from buildpolicy.engine.envstate import STATE_VAR, restore_baseline
    from buildpolicy.output.render import render_env

    _baseline, touched = restore_baseline(os.environ)
    set_env = {name: before for name, before in touched.items() if before is not None}
    unset = [name for name, before in touched.items() if before is None]
    if STATE_VAR in os.environ:
        unset.append(STATE_VAR)
    try:
        text = render_env(set_env, unset, shell=args.shell, fmt=args.format)
    except BuildpolicyError:
        return  # a bad --shell/--format: the error says so, nothing to restore with
    write_stdout(text.encode("utf-8", "surrogateescape"))


def _record_for_replay(argv, result, stdout: bytes, stderr: str, summary: str) -> None:
    """Keep what this run printed, with what it depended on, for the next identical
    ``env`` to replay (``buildpolicy.replay``)."""
    import os

    from buildpolicy.replay import record, store

    inputs = record.build(result)
    if inputs is not None:
        # The summary is kept apart from the warnings: the replay prints it at a terminal only.
        store.save(argv, os.getcwd(), os.environ, {**inputs, "stdout": stdout, "stderr": stderr, "summary": summary})


def write_stdout(data: bytes) -> None:
    """Write the environment as bytes, so values holding undecodable bytes
    (surrogateescape) round-trip and no newline translation touches them.

    A closed or full stdout is an error with exit 74 (EX_IOERR), not a traceback.
    """
    import errno
    import os

    if sys.stdout is None:
        raise BuildpolicyError("standard output is closed: nowhere to print the environment", EXIT_IO_ERROR)
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        # Drop what is buffered, or the interpreter retries the write at exit.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
        reason = exc.strerror or errno.errorcode.get(exc.errno, str(exc))
        raise BuildpolicyError(f"cannot write the environment to standard output: {reason}", EXIT_IO_ERROR) from None

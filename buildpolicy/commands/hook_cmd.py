"""``buildpolicy hook bash|zsh|fish``: the code that runs ``env`` before every prompt (DESIGN §13)."""

from __future__ import annotations

import os
import sys

from buildpolicy.errors import BuildpolicyError

HELP = "print the shell code that applies the environment before every prompt: eval \"$(buildpolicy hook bash)\""


def add_arguments(parser) -> None:
    """This command's arguments."""
    from buildpolicy.output.hook import HOOK_SHELLS

    parser.add_argument("shell", choices=HOOK_SHELLS,
                        help="the shell to hook: bash (~/.bashrc: eval \"$(buildpolicy hook bash)\"), zsh "
                             "(~/.zshrc: eval \"$(buildpolicy hook zsh)\") or fish "
                             "(config.fish: buildpolicy hook fish | source)")


def self_command() -> list[str]:
    """How the hook calls this very buildpolicy: the console script by its absolute
    path (no PATH lookup at every prompt, and no other buildpolicy found first),
    else this interpreter with ``-P -m buildpolicy`` (``-P``: the prompt's directory,
    an untrusted repository, is not put on ``sys.path``, where a ``buildpolicy/``
    of its own would be imported instead)."""
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) == "buildpolicy" and os.path.isfile(script) and os.access(script, os.X_OK):
        return [os.path.abspath(script)]
    return [sys.executable, "-P", "-m", "buildpolicy"]


def run(args, command_argv) -> int:
    """Print the hook for ``args.shell``."""
    from buildpolicy.output.hook import hook_script

    if command_argv is not None:
        raise BuildpolicyError("hook takes no command after `--`")
    sys.stdout.write(hook_script(args.shell, self_command()))
    return 0

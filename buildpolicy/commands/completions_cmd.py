"""``buildpolicy completions bash|zsh|fish``: shell completion, written out from the parser."""

from __future__ import annotations

import sys

HELP = "print shell completion code: eval \"$(buildpolicy completions bash)\""


def add_arguments(parser) -> None:
    """This command's arguments."""
    from buildpolicy.output.completions import COMPLETION_SHELLS

    parser.add_argument("shell", choices=COMPLETION_SHELLS,
                        help="bash (~/.bashrc: eval \"$(buildpolicy completions bash)\"), zsh (~/.zshrc, after "
                             "compinit: source <(buildpolicy completions zsh)) or fish "
                             "(buildpolicy completions fish > ~/.config/fish/completions/buildpolicy.fish)")


def run(args, command_argv) -> int:
    """Print the script for ``args.shell``, describing every command of the full parser."""
    from buildpolicy.output.cliinfo import describe
    from buildpolicy.output.completions import completion_script

    sys.stdout.write(completion_script(describe(args.build_parser()), args.shell))
    return 0

"""``buildpolicy man``: the man page buildpolicy(1), written out from the parser."""

from __future__ import annotations

import sys

HELP = "print the man page (roff): buildpolicy man > ~/.local/share/man/man1/buildpolicy.1"


def add_arguments(parser) -> None:
    """This command's arguments (none)."""


def run(args, command_argv) -> int:
    """Print buildpolicy.1; dated by ``SOURCE_DATE_EPOCH`` when set (reproducible builds), else today."""
    import os
    import time

    from buildpolicy import __version__
    from buildpolicy.output.cliinfo import describe
    from buildpolicy.output.manpage import man_page

    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    date = time.strftime("%Y-%m-%d", time.gmtime(int(epoch) if epoch.isdigit() else None))
    sys.stdout.write(man_page(describe(args.build_parser()), __version__, date))
    return 0

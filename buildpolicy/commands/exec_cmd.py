"""``buildpolicy exec -- CMD...``: run a command with the decided environment.

The command only parses its arguments; the steps (evaluate, plan, gate, run,
log) are in ``buildpolicy.run.execute``.
"""

from __future__ import annotations

from buildpolicy.commands.common import add_common, make_request
from buildpolicy.errors import BuildpolicyError

HELP = "run a command with the environment (cargo argv understood)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    add_common(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the plan as JSON instead of running")


def run(args, command_argv) -> int:
    """Run the command (or print the plan with ``--dry-run``); return its exit status."""
    from buildpolicy.run.execute import execute, is_cargo

    if not command_argv:
        raise BuildpolicyError("exec needs a command after `--`, e.g. buildpolicy exec -- cargo build")
    request = make_request(args, command_argv if is_cargo(command_argv) else None, "exec")
    return execute(request, command_argv, dry_run=args.dry_run, quiet=args.quiet)

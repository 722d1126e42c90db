"""``buildpolicy exec -- CMD...``: run a command with the decided environment."""

from __future__ import annotations

import json
import os
import sys

from buildpolicy.cli import add_common, make_request, print_warnings
from buildpolicy.errors import BuildpolicyError


def is_cargo(argv) -> bool:
    """Whether ``argv`` runs cargo (so its arguments are understood)."""
    return bool(argv) and os.path.basename(argv[0]) in ("cargo", "cargo.exe")


HELP = "run a command with the environment (cargo argv understood)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    add_common(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the plan as JSON instead of running")



def run(args, command_argv) -> int:
    """Replace this process with the command (exit status preserved), or print the plan."""
    from buildpolicy.context import ExecPlan
    from buildpolicy.engine import evaluate
    from buildpolicy.report import explain_json

    if not command_argv:
        raise BuildpolicyError("exec needs a command after `--`, e.g. buildpolicy exec -- cargo build")
    cargo = is_cargo(command_argv)
    request = make_request(args, command_argv if cargo else None, "exec")
    result = evaluate(request)
    argv = tuple(result.cargo_args) if cargo else tuple(command_argv)
    plan = result.plugins.wrap_exec(ExecPlan(argv=argv, env=result.exec_env()), result.context)
    print_warnings(result.warnings, args.quiet)
    if args.dry_run:
        report = explain_json(result)
        report["argv"] = list(plan.argv)
        report["execution"] = dict(plan.execution)
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(plan.argv[0], list(plan.argv), dict(plan.env))
    except FileNotFoundError:
        print(f"buildpolicy: error: {plan.argv[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"buildpolicy: error: {plan.argv[0]}: permission denied", file=sys.stderr)
        return 126
    return 0  # not reached: execvpe replaced the process

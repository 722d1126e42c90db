"""``buildpolicy doctor``: check the effective build environment for costly traps, each with its fix."""

from __future__ import annotations

import json
import sys

from buildpolicy.commands.common import add_common, make_request
from buildpolicy.output.notes import print_warnings
from buildpolicy.errors import EXIT_PROBLEMS

HELP = "check the build environment for traps (shadowed rustflags, sccache + incremental, ...); exit 1 if any"


def add_arguments(parser) -> None:
    """This command's arguments."""
    add_common(parser)
    parser.add_argument("--format", default="text", choices=("text", "json"))


def run(args, command_argv) -> int:
    """Evaluate as ``env`` would (a cargo argv after ``--`` picks the profile), run every check, print."""
    import os

    from buildpolicy.team.doctor import check_stale_shell, diagnose, format_problems
    from buildpolicy.engine.pipeline import evaluate

    result = evaluate(make_request(args, command_argv, "doctor"))
    problems, notes = diagnose(result)
    problems[:0] = check_stale_shell(_as_at_the_prompt(args, command_argv, result), os.environ)
    print_warnings([*result.warnings, *notes], args.quiet)
    if args.format == "json":
        sys.stdout.write(json.dumps({"problems": [p.to_json() for p in problems]}, indent=2) + "\n")
    else:
        sys.stdout.write(format_problems(problems))
    return EXIT_PROBLEMS if problems else 0


def _as_at_the_prompt(args, command_argv, result):
    """What a plain ``env`` gives here (the prompt runs it without a cargo argv,
    ``--profile`` or ``--set``): ``result`` itself when doctor was asked the same."""
    if command_argv is None and not args.profile and not args.sets:
        return result
    from argparse import Namespace

    from buildpolicy.engine.pipeline import evaluate

    plain = Namespace(**{**vars(args), "profile": None, "sets": []})
    return evaluate(make_request(plain, None, "doctor"))

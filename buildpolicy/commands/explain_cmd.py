"""``buildpolicy explain [NAME]``: every decision, variable, knob and rule with provenance."""

from __future__ import annotations

import json
import sys

from buildpolicy.commands.common import add_common, make_request
from buildpolicy.output.notes import print_warnings
from buildpolicy.errors import BuildpolicyError


HELP = "why every value is what it is"


def add_arguments(parser) -> None:
    """This command's arguments."""
    add_common(parser)
    parser.add_argument("name", nargs="?", help="only this decision, variable, knob, rule or fact")
    parser.add_argument("--format", default="text", choices=("text", "json"))



def run(args, command_argv) -> int:
    """Print the explanation as text for people or as the JSON contract."""
    from buildpolicy.engine.pipeline import evaluate
    from buildpolicy.output.report import explain_json, explain_text

    result = evaluate(make_request(args, command_argv, "explain"))
    if args.format == "json":
        report = explain_json(result)
        text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    else:
        text = explain_text(result, args.name)
        if not text:
            raise BuildpolicyError(f"nothing named {args.name!r}: not a decision, variable, knob, rule or fact")
        print_warnings(result.warnings if args.name else [], args.quiet)
    sys.stdout.write(text)
    return 0

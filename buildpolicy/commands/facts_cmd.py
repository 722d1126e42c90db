"""``buildpolicy facts [NAME...]``: the facts model."""

from __future__ import annotations

import json
import sys

from buildpolicy.commands.common import add_common, make_request
from buildpolicy.errors import BuildpolicyError


HELP = "print the facts model"


def add_arguments(parser) -> None:
    """This command's arguments."""
    add_common(parser)
    parser.add_argument("names", nargs="*", help="only these facts")
    parser.add_argument("--format", default="text", choices=("text", "json"))



def run(args, command_argv) -> int:
    """Probe the named facts (default: all) and print them."""
    from buildpolicy.engine.pipeline import evaluate
    from buildpolicy.facts import fact_type
    from buildpolicy.output.report import _table, format_fact

    unknown_names = [name for name in args.names if fact_type(name) is None]
    if unknown_names:
        raise BuildpolicyError(f"unknown fact(s): {', '.join(unknown_names)}")
    result = evaluate(make_request(args, command_argv, "facts"))
    values = {name: result.facts.get(name) for name in args.names} if args.names else result.facts.probe_all()
    if args.format == "json":
        sys.stdout.write(json.dumps(values, indent=2, sort_keys=True, default=list) + "\n")
        return 0
    rows = []
    for name, value in values.items():
        why = result.facts.unknown_reason(name) if value is None else ""
        rows.append((name, format_fact(value, fact_type(name)), why or ""))
    sys.stdout.write("\n".join(_table(rows, indent="")) + "\n")
    return 0

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
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="full reasons and details, every rule, and whether a warm `env` replays this")
    parser.add_argument("--all", dest="show_all", action="store_true", help="every knob, not only those not at their defaults")
    parser.add_argument("--color", default="auto", choices=("auto", "always", "never"),
                        help="colour the text: auto (default) on a terminal unless NO_COLOR is set")


def run(args, command_argv) -> int:
    """Print the explanation as text for people (see ``buildpolicy.output.explain_text``) or
    as the JSON contract."""
    from buildpolicy.engine.pipeline import evaluate
    from buildpolicy.output.report import explain_json

    result = evaluate(make_request(args, command_argv, "explain"))
    if args.format == "json":
        report = explain_json(result)
        text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    else:
        text = _text(result, args)
        if not text:
            raise BuildpolicyError(f"nothing named {args.name!r}: not a decision, variable, knob, rule or fact")
        print_warnings(result.warnings if args.name else [], args.quiet)
    sys.stdout.write(text)
    return 0


def _text(result, args) -> str:
    """The report for people, fitted to stdout: its width, colour, paths short."""
    import os

    from buildpolicy.data import policies_dir
    from buildpolicy.output.explain_text import explain_text
    from buildpolicy.output.style import PathShortener, Style, terminal_width, use_color

    short = PathShortener(result.policy_set.project_root, str(policies_dir()), os.environ.get("HOME"))
    return explain_text(result, args.name, verbose=args.verbose, show_all=args.show_all,
                        width=terminal_width(sys.stdout), style=Style(use_color(args.color, sys.stdout)), short=short)

"""``buildpolicy cache``: the sccache backend in use, whether it answers, and its server's hit rate."""

from __future__ import annotations

import json
import sys

from buildpolicy.commands.common import add_common, make_request
from buildpolicy.output.notes import print_warnings

HELP = "the sccache backend: reachability and latency, hits and misses of its server (--zero resets them)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    add_common(parser)
    parser.add_argument("--zero", action="store_true", help="reset the statistics of the backend's server")
    parser.add_argument("--format", default="text", choices=("text", "json"))


def run(args, command_argv) -> int:
    """Probe the configured backend (recording the answer, as ``exec`` does) and report its server."""
    from buildpolicy.engine.pipeline import evaluate
    from buildpolicy.run.cache.report import report, report_text

    result = evaluate(make_request(args, command_argv, "cache"))
    print_warnings(result.warnings, args.quiet)
    data = report(result, zero=args.zero)
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(report_text(data))
    return 0

"""``buildpolicy get KNOB``: a knob's effective value here and where it came from (as ``cargo config get``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from buildpolicy.errors import BuildpolicyError

HELP = "print a knob's effective value here and where it comes from"


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("knob", help="the knob's name, e.g. jobs")
    parser.add_argument("--format", default="text",
                        help="text (default: `jobs = 4  # user ~/.config/buildpolicy/knobs.toml:6`), "
                             "value (the value alone, for scripts) or json")


def run(args, command_argv) -> int:
    """Print the value and its source; exit 2 for a knob nothing declares or a bad value."""
    from buildpolicy.team.knobinfo import display_value, json_value, resolve_all, source_json, source_text, unknown_knob

    if command_argv is not None:
        raise BuildpolicyError("get takes no command after `--`")
    if args.format not in ("text", "value", "json"):
        raise BuildpolicyError(f"get: unknown --format {args.format!r}; allowed: text, value, json")
    specs, values = resolve_all(Path.cwd(), dict(os.environ))
    if args.knob not in specs:
        raise unknown_knob(args.knob, specs)
    knob = values[args.knob]
    if args.format == "json":
        data = {"name": args.knob, "value": json_value(knob.value), "source": source_json(knob.provenance),
                "variables": list(specs[args.knob].env_names), "ignored": list(knob.rejected)}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif args.format == "value":
        sys.stdout.write(("" if knob.value is None else display_value(knob.value)) + "\n")
    else:
        sys.stdout.write(f"{args.knob} = {display_value(knob.value)}  # {source_text(knob.provenance)}\n")
        for message in knob.rejected:
            sys.stdout.write(f"  ignored: {message}\n")
    return 0

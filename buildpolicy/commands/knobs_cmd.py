"""``buildpolicy knobs``: every knob with its effective value here and its source (as ``mise settings``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from buildpolicy.errors import BuildpolicyError

HELP = "list every knob with its value here and where it comes from"


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("--format", default="text", help="text (default) or json")


def run(args, command_argv) -> int:
    """Print the table (or JSON: ``{name: {value, source, type, default, variables, description}}``)."""
    from buildpolicy.team.knobinfo import display_value, json_value, resolve_all, source_json, source_text

    if command_argv is not None:
        raise BuildpolicyError("knobs takes no command after `--`")
    if args.format not in ("text", "json"):
        raise BuildpolicyError(f"knobs: unknown --format {args.format!r}; allowed: text, json")
    specs, values = resolve_all(Path.cwd(), dict(os.environ))
    if args.format == "json":
        data = {name: {"value": json_value(values[name].value), "source": source_json(values[name].provenance),
                       "type": spec.type, "default": json_value(spec.default), "allowed": spec.allowed(),
                       "variables": list(spec.env_names), "description": spec.description,
                       "ignored": list(values[name].rejected)}
                for name, spec in sorted(specs.items())}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    rows = [("knob", "value", "source")]
    rows += [(name, display_value(values[name].value), source_text(values[name].provenance)) for name in sorted(specs)]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{name.ljust(widths[0])}  {value.ljust(widths[1])}  {source}".rstrip() for name, value, source in rows]
    lines += [f"  {name}: ignored {message}" for name in sorted(specs) for message in values[name].rejected]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0

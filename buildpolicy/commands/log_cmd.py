"""``buildpolicy log``: summarise the action log per profile and decision set."""

from __future__ import annotations

import json
import os
import sys

from buildpolicy.errors import BuildpolicyError

HELP = "summarise past exec runs per profile and decision set (count, median, p90, failures)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("--format", default="text", help="text (default) or json")
    parser.add_argument("--profile", help="only runs of this cargo profile")
    parser.add_argument("--action", help="only runs of this action (cargo command, e.g. build)")


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.1f}s" if ms >= 1000 else f"{ms:.0f}ms"


def run(args, command_argv) -> int:
    """Read the log (skipping bad lines), group it and print the summary."""
    from buildpolicy.run import actionlog
    from buildpolicy.engine.envstate import restore_baseline
    from buildpolicy.paths import Paths

    if args.format not in ("text", "json"):
        raise BuildpolicyError(f"log: unknown --format {args.format!r}; allowed: text, json")
    if command_argv:
        raise BuildpolicyError("log takes no command after `--`")
    paths = Paths.from_environ(restore_baseline(os.environ)[0])
    entries, skipped = actionlog.read_entries(paths.state_dir)
    if args.profile:
        entries = [e for e in entries if e.get("profile") == args.profile]
    if args.action:
        entries = [e for e in entries if e.get("action") == args.action]
    groups = actionlog.summarize(entries)
    path = actionlog.log_path(paths.state_dir)
    if args.format == "json":
        report = {"log": str(path), "runs": len(entries), "skipped_lines": skipped, "groups": [g.to_json() for g in groups]}
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return 0
    if skipped:
        print(f"buildpolicy: warning: {skipped} unreadable line(s) in {path} skipped", file=sys.stderr)
    if not groups:
        sys.stdout.write(f"no runs logged in {path}\n")
        return 0
    rows = [("action", "profile", "runs", "median", "p90", "failures")]
    for group in groups:
        rows.append((group.action, group.profile, str(group.count), _seconds(group.median_ms),
                     _seconds(group.p90_ms), str(group.failures)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"{len(entries)} run(s) in {path}", ""]
    for index, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index:
            decisions = groups[index - 1].decisions
            lines.append("    " + (", ".join(f"{name}={status}" for name, status in decisions) or "(no decisions)"))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0

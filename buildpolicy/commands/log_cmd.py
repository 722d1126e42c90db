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
    learned = _learned_peaks(paths.state_dir, args.profile)
    if args.format == "json":
        report = {"log": str(path), "runs": len(entries), "skipped_lines": skipped, "groups": [g.to_json() for g in groups],
                  "governor": {"preemptions": _preemptions(entries), "learned_peaks": learned}}
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return 0
    if skipped:
        print(f"buildpolicy: warning: {skipped} unreadable line(s) in {path} skipped", file=sys.stderr)
    if not groups:
        sys.stdout.write(f"no runs logged in {path}\n" + _governor_text(entries, learned))
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
    sys.stdout.write("\n".join(lines) + "\n" + _governor_text(entries, learned))
    return 0


def _preemptions(entries) -> list[dict]:
    """Every preemption the memory governor logged, oldest first, with its run's start."""
    found = []
    for entry in entries:
        governor = entry.get("governor")
        for item in (governor.get("preemptions") if isinstance(governor, dict) else None) or ():
            if isinstance(item, dict):
                found.append({"started_at": entry.get("started_at"), "profile": entry.get("profile"), **item})
    return found


def _learned_peaks(state_dir, profile: str | None) -> list[dict]:
    """The memory governor's learned peaks per workspace and profile (``--profile`` filters)."""
    from buildpolicy.run.governor import peaks

    rows = []
    for workspace, table in peaks.all_workspaces(state_dir):
        for name, crates in sorted(table.items()):
            if profile and name.partition(":")[0] != profile:
                continue
            rows.append({"workspace": workspace, "profile": name, "crates": {
                key: {"estimate_mib": peaks.estimate_bytes(entry) >> 20, "peaks_mib": entry["peaks_mib"],
                      "builds": entry["builds"]}
                for key, entry in sorted(crates.items())}})
    return rows


def _governor_text(entries, learned: list[dict]) -> str:
    """The memory governor's part of the text summary: preemptions, and the heaviest learned crates."""
    lines = []
    preemptions = _preemptions(entries)
    if preemptions:
        lines += ["", f"memory governor: {len(preemptions)} preemption(s); the last ones:"]
        for item in preemptions[-5:]:
            lines.append(f"  {item.get('started_at')}  {item.get('profile')}  {item.get('crate')} ({item.get('kind')}) "
                         f"stopped at {item.get('rss_mib')} MiB, {item.get('available_mib')} MiB available")
    for row in learned:
        crates = row["crates"]
        heaviest = sorted(crates.items(), key=lambda item: (-item[1]["estimate_mib"], item[0]))[:8]
        lines += ["", f"learned rustc peaks: {row['workspace']}, profile {row['profile']} ({len(crates)} crates)"]
        width = max(len(key) for key, _ in heaviest)
        for key, entry in heaviest:
            lines.append(f"  {key.ljust(width)}  estimate {entry['estimate_mib']:>6} MiB  "
                         f"from {entry['builds']} build{'s' if entry['builds'] != 1 else ''}")
        if len(crates) > len(heaviest):
            lines.append(f"  … {len(crates) - len(heaviest)} lighter crate(s); `buildpolicy log --format json` lists all")
    return "\n".join(lines) + ("\n" if lines else "")

"""``buildpolicy log``: summarise the action log per profile and decision set."""

from __future__ import annotations

import json
import os
import sys

from buildpolicy.errors import BuildpolicyError

HELP = "summarise past exec runs per profile and decision set (count, median, p90, failures)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("run", nargs="?", metavar="RUN_ID",
                        help="show one run in full: its id (or a prefix of it) from the list of recent runs, or `last`")
    parser.add_argument("--format", default="text", help="text (default) or json")
    parser.add_argument("--profile", help="only runs of this cargo profile")
    parser.add_argument("--action", help="only runs of this action (cargo command, e.g. build)")
    parser.add_argument("--since", metavar="WHEN",
                        help="only runs started since WHEN: a duration back (90m, 2h, 3d, 1w) or a date and time "
                             "(2026-05-01, 2026-05-01T09:30, local time)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--project", metavar="DIR",
                       help="only runs of the project (cargo workspace) at DIR (default: the one here)")
    scope.add_argument("--all", action="store_true", help="runs of every project")


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
    path = actionlog.log_path(paths.state_dir)
    if args.run:
        return _show_run(args, entries, path)
    entries, scope = _selected(args, entries)
    groups = actionlog.summarize(entries)
    learned = _learned_peaks(paths.state_dir, args.profile)
    if args.format == "json":
        report = {"log": str(path), "project": scope, "runs": len(entries), "skipped_lines": skipped,
                  "groups": [g.to_json() for g in groups], "recent": [_run_json(e) for e in entries[-RECENT:]],
                  "governor": {"preemptions": _preemptions(entries), "learned_peaks": learned}}
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return 0
    if skipped:
        print(f"buildpolicy: warning: {skipped} unreadable line(s) in {path} skipped", file=sys.stderr)
    if not groups:
        where = f" for {scope}" if scope else ""
        sys.stdout.write(f"no runs logged in {path}{where}\n" + _governor_text(entries, learned))
        return 0
    rows = [("action", "profile", "runs", "median", "p90", "failures")]
    for group in groups:
        rows.append((group.action, group.profile, str(group.count), _seconds(group.median_ms),
                     _seconds(group.p90_ms), str(group.failures)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"{len(entries)} run(s) in {path}" + (f" for {scope}" if scope else " (every project)"), ""]
    for index, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index:
            decisions = groups[index - 1].decisions
            lines.append("    " + (", ".join(f"{name}={status}" for name, status in decisions) or "(no decisions)"))
    lines += ["", "recent runs (`buildpolicy log RUN_ID` shows one):"]
    lines += [f"  {_run_line(entry)}" for entry in entries[-RECENT:]]
    sys.stdout.write("\n".join(lines) + "\n" + _governor_text(entries, learned))
    return 0


RECENT = 5  # runs listed with their ids


def _selected(args, entries) -> tuple[list, str | None]:
    """The entries the flags select, and the project they belong to (None with ``--all``)."""
    import time
    from pathlib import Path

    from buildpolicy.run import actionlog

    scope = None
    if not args.all:
        start = Path(args.project) if args.project else Path.cwd()
        if not start.is_dir():
            raise BuildpolicyError(f"log --project {args.project}: not a directory")
        root = actionlog.project_root(start.resolve())
        scope = str(root)
        entries = [e for e in entries if actionlog.in_project(e, root)]
    if args.since:
        try:
            since = actionlog.since_timestamp(args.since, time.time())
        except ValueError as exc:
            raise BuildpolicyError(f"log: {exc}") from None
        entries = [e for e in entries if str(e.get("started_at", "")) >= since]
    if args.profile:
        entries = [e for e in entries if e.get("profile") == args.profile]
    if args.action:
        entries = [e for e in entries if e.get("action") == args.action]
    return entries, scope


def _run_json(entry) -> dict:
    """A logged run with its id."""
    from buildpolicy.run import actionlog

    return {"id": actionlog.run_id(entry), **entry}


def _run_line(entry) -> str:
    """One run on one line: id, start, action and profile, result, duration."""
    from buildpolicy.run import actionlog

    code = entry.get("exit_code")
    result = "ok" if code == 0 else f"exit {code}"
    return (f"{actionlog.run_id(entry)}  {entry.get('started_at', '?')}  {entry.get('action', '?')} "
            f"{entry.get('profile', '?')}  {result}  {_seconds(float(entry['duration_ms']))}")


def _show_run(args, entries, path) -> int:
    """``log RUN_ID``: one run in full (``last``: the newest). Exit 2 when no run or several match."""
    from buildpolicy.run import actionlog

    wanted = args.run.strip().lower()
    if wanted == "last":  # the newest run the flags select (this project's by default)
        matches = _selected(args, entries)[0][-1:]
    else:
        matches = [e for e in entries if actionlog.run_id(e).startswith(wanted)] if len(wanted) >= 4 else []
    if len(matches) != 1:
        why = "no logged run has" if not matches else f"{len(matches)} runs have"
        raise BuildpolicyError(f"log: {why} the id {args.run!r} in {path} (give at least 4 characters of an id "
                               "that `buildpolicy log` lists, or `last`)")
    entry = _run_json(matches[0])
    if args.format == "json":
        sys.stdout.write(json.dumps(entry, indent=2, sort_keys=True) + "\n")
        return 0
    lines = [f"run {entry['id']}  {_run_line(matches[0]).split('  ', 1)[1]}"]
    for key, label in (("argv", "command"), ("cwd", "directory"), ("workspace", "workspace"),
                       ("target_dir", "target dir"), ("gate_wait_ms", "gate wait"), ("execution", "execution"),
                       ("rustflags_var", "rustflags in"), ("rustflags", "rustflags")):
        value = entry.get(key)
        if value in (None, "", [], {}):
            continue
        if key == "argv":
            value = " ".join(str(word) for word in value)
        elif key == "gate_wait_ms":
            value = _seconds(float(value)) if isinstance(value, (int, float)) else value
        elif key == "execution" and isinstance(value, dict):
            value = " ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"  {label + ':':<14}{value}")
    decisions = entry.get("decisions") or {}
    if decisions:
        lines.append("  decisions:")
        width = max(len(str(name)) for name in decisions)
        lines += [f"    {str(name).ljust(width)}  {status}" for name, status in sorted(decisions.items())]
    governor = entry.get("governor")
    if isinstance(governor, dict):
        lines.append("  memory governor:")
        lines += [f"    {key}: {json.dumps(value)}" for key, value in sorted(governor.items())]
    sys.stdout.write("\n".join(lines) + "\n")
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

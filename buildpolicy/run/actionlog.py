"""The action log: one JSON line per ``exec``, and its summary for ``buildpolicy log``.

``$XDG_STATE_HOME/buildpolicy/actions.jsonl`` gets one object per line::

    {"v": 1, "started_at": "2026-05-05T09:12:03.412Z", "duration_ms": 73214.5,
     "gate_wait_ms": 0.0, "exit_code": 0, "action": "build", "profile": "selfdev",
     "execution": {"mode": "local"}, "target_dir": "/src/app/target",
     "rustflags": "-C link-arg=-fuse-ld=mold", "rustflags_var": "CARGO_TARGET_…_RUSTFLAGS",
     "decisions": {"jobs": "adaptive:6 (…)", "sccache": "skipped-incremental", …},
     "argv": ["cargo", "build", "--profile", "selfdev"], "cwd": "/src/app"}

``duration_ms`` is the command's own run time (for a remote build: sync, run
and sync back); the wait for the build gate is ``gate_wait_ms``, apart.
Lines are appended with one ``write`` under a short lock, so concurrent
``exec``\\ s never interleave; past ``MAX_BYTES`` the file is rotated to
``actions.jsonl.1`` (one generation kept). A line that is corrupt, truncated
or of the wrong shape is skipped when reading, never fatal.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

LOG_NAME = "actions.jsonl"
LOCK_NAME = "actions.lock"
MAX_BYTES = 8 << 20
VERSION = 1
# "adaptive:6 (cpus=8, mem_avail=…)" varies with free memory at every run; the
# part before the parenthesis is the decision itself.
_DETAIL = re.compile(r"\s*\(.*\)\s*$")


def log_path(state_dir: Path) -> Path:
    """The action log file in ``state_dir``."""
    return Path(state_dir) / LOG_NAME


def append(state_dir: Path, entry: Mapping[str, Any]) -> None:
    """Append ``entry`` as one line; rotate a full log. Raises OSError (callers warn)."""
    from buildpolicy.run.locks import locked

    path = log_path(state_dir)
    line = (json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogateescape")
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(Path(state_dir) / LOCK_NAME, timeout=1.0):
        # Without the lock (a stuck holder) the O_APPEND write of one line is still
        # atomic enough on local filesystems: better a rare risk than a lost entry.
        try:
            if path.stat().st_size + len(line) > MAX_BYTES:
                os.replace(path, path.with_name(LOG_NAME + ".1"))
        except FileNotFoundError:
            pass
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            # A torn last line (a crash mid-write, a damaged file) must not swallow
            # this entry: start it on a line of its own.
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
        finally:
            os.close(fd)


def _valid(entry: Any) -> bool:
    """Whether a parsed line has the fields the summary needs, with usable types."""
    if not isinstance(entry, dict):
        return False
    duration = entry.get("duration_ms")
    code = entry.get("exit_code")
    return (
        isinstance(duration, (int, float)) and not isinstance(duration, bool) and math.isfinite(duration)
        and isinstance(code, int) and not isinstance(code, bool)
        and isinstance(entry.get("decisions", {}), dict)
        and isinstance(entry.get("profile", ""), (str, type(None)))
    )


def read_entries(state_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """Every valid entry, oldest first (the rotated file, then the current one), and how many lines were skipped."""
    entries: list[dict[str, Any]] = []
    skipped = 0
    path = log_path(state_dir)
    for file in (path.with_name(LOG_NAME + ".1"), path):
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            continue
        except OSError:
            skipped += 1  # an unreadable file counts as one skipped unit
            continue
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw.decode("utf-8", "surrogateescape"))
            except ValueError:
                skipped += 1
                continue
            if _valid(entry):
                entries.append(entry)
            else:
                skipped += 1
    return entries, skipped


def decision_key(statuses: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The decision set of an entry: every status without its run-specific details."""
    return tuple(sorted((str(name), _DETAIL.sub("", str(status))) for name, status in statuses.items()))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@attrs.frozen
class Group:
    """Runs of one action and profile with one decision set."""

    action: str
    profile: str
    decisions: tuple[tuple[str, str], ...]
    count: int
    median_ms: float
    p90_ms: float
    failures: int
    last_started_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "profile": self.profile,
            "decisions": dict(self.decisions),
            "count": self.count,
            "median_ms": round(self.median_ms, 1),
            "p90_ms": round(self.p90_ms, 1),
            "failures": self.failures,
            "last_started_at": self.last_started_at,
        }


def summarize(entries: Iterable[Mapping[str, Any]]) -> list[Group]:
    """Group entries by action, profile and decision set; most runs first.

    The action is part of the key because a test run and a build of one
    profile are not comparable durations.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for entry in entries:
        key = (str(entry.get("action") or "?"), str(entry.get("profile") or "?"), decision_key(entry.get("decisions") or {}))
        groups.setdefault(key, []).append(entry)
    result = []
    for (action, profile, decisions), runs in groups.items():
        durations = [float(run["duration_ms"]) for run in runs]
        result.append(Group(
            action=action,
            profile=profile,
            decisions=decisions,
            count=len(runs),
            median_ms=median(durations),
            p90_ms=percentile(durations, 0.9),
            failures=sum(1 for run in runs if run["exit_code"] != 0),
            last_started_at=max(str(run.get("started_at", "")) for run in runs),
        ))
    result.sort(key=lambda g: (-g.count, g.profile, g.action, g.decisions))
    return result

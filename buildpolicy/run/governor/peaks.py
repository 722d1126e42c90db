"""Learned peaks: the peak RSS of every rustc run, per workspace, profile and crate.

One state file per workspace, ``<state dir>/governor/peaks-<hash>.json``:

    {"version": 1, "workspace": "/src/app",
     "profiles": {"release": {"serde:lib": {"peaks_mib": [212, 208], "builds": 7,
                                            "updated": "2026-11-30T14:00:00Z"}}}}

A crate's estimate is the largest of its last ``KEEP`` peaks, plus a margin:
code changes between builds, so the next peak may be a little higher. ``cargo
check`` compiles only metadata, a fraction of the memory of a build, so it is
kept as its own profile (``dev:check``). The file is advisory: a missing,
corrupt or foreign file is an empty table, and writers merge under a lock so
two builds of one workspace lose nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

VERSION = 1
KEEP = 5
MARGIN = 1.10
MIB = 1 << 20


def profile_key(profile: str, check: bool) -> str:
    """The profile name peaks are kept under (``dev``, or ``dev:check`` for ``cargo check``)."""
    return f"{profile}:check" if check else profile


def peaks_path(state_dir: Path, workspace: str) -> Path:
    """The peaks file of one workspace."""
    from buildpolicy.filestate import sha256_hex

    return Path(state_dir) / "governor" / f"peaks-{sha256_hex(workspace.encode())[:16]}.json"


def _valid_entry(entry) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("peaks_mib"), list)
            and all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p < 1 << 30
                    for p in entry["peaks_mib"])
            and isinstance(entry.get("builds"), int) and entry["peaks_mib"])


def load(state_dir: Path, workspace: str) -> dict[str, dict[str, dict]]:
    """``{profile: {crate key: entry}}`` learned for ``workspace`` (empty when nothing usable)."""
    from buildpolicy.filestate import load_state_json

    data = load_state_json(peaks_path(state_dir, workspace))
    if not isinstance(data, dict) or data.get("version") != VERSION or data.get("workspace") != workspace:
        return {}
    profiles = data.get("profiles")
    if not isinstance(profiles, dict):
        return {}
    table = {
        profile: {key: entry for key, entry in crates.items() if isinstance(key, str) and _valid_entry(entry)}
        for profile, crates in profiles.items() if isinstance(profile, str) and isinstance(crates, dict)
    }
    return {profile: crates for profile, crates in table.items() if crates}


def estimate_bytes(entry: dict) -> int:
    """What a crate is expected to need next time, in bytes."""
    return int(max(entry["peaks_mib"][-KEEP:]) * MARGIN * MIB)


def record(state_dir: Path, workspace: str, observed: dict[str, dict[str, int]]) -> bool:
    """Merge ``{profile: {crate key: peak bytes}}`` from one build; False when it could not be written."""
    from buildpolicy.filestate import write_state
    from buildpolicy.run.locks import locked

    if not observed:
        return True
    path = peaks_path(state_dir, workspace)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with locked(path.with_name(path.name + ".lock"), timeout=2.0):
        table = load(state_dir, workspace)
        for profile, crates in observed.items():
            known = table.setdefault(profile, {})
            for key, peak in crates.items():
                entry = known.get(key) or {"peaks_mib": [], "builds": 0}
                peaks = [*entry["peaks_mib"], max(1, round(peak / MIB))][-KEEP:]
                known[key] = {"peaks_mib": peaks, "builds": entry["builds"] + 1, "updated": stamp}
        data = {"version": VERSION, "workspace": workspace, "profiles": table}
        try:
            write_state(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        except OSError:
            return False
    return True


def all_workspaces(state_dir: Path) -> list[tuple[str, dict[str, dict[str, dict]]]]:
    """Every workspace with learned peaks: ``(workspace, table)``, for ``buildpolicy log``."""
    from buildpolicy.filestate import load_state_json

    directory = Path(state_dir) / "governor"
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        if name.startswith("peaks-") and name.endswith(".json"):
            data = load_state_json(directory / name)
            workspace = data.get("workspace") if isinstance(data, dict) else None
            if isinstance(workspace, str):
                table = load(state_dir, workspace)
                if table:
                    found.append((workspace, table))
    return found

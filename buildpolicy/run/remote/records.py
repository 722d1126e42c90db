"""Recorded probe results: how ``env`` decides the build host without the network.

``env`` runs at every prompt and must never wait on a host (DESIGN §13). Every
probe (``exec``, ``explain``, the background refresh) records each host's
outcome in ``$XDG_STATE_HOME/buildpolicy/remote-hosts.json``: ``{key: {host,
config, ok, reason, at}}``, keyed by the ssh config file and the host alias
(the same alias in two configs is two hosts). ``env`` reads the file and
decides as a probe would have: the first host in configured order whose
latest result is *up* wins.

A result counts for ``USABLE_FOR`` seconds; older ones, and hosts never
probed, are unknown. When a result ``env`` relied on is older than
``REFRESH_AFTER`` (or missing), ``env`` starts a background refresh
(``refresh``) and answers from what it has. Updates are merged under a short
lock and written atomically; a corrupt file reads as empty.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from buildpolicy.record import frozen

RECORDS = "remote-hosts.json"
RECORDS_LOCK = "remote-hosts.lock"
REFRESH_AFTER = 60.0  # seconds: an older result is refreshed in the background at the next prompt
USABLE_FOR = 900.0  # seconds: an older result is not used at all
KEEP_FOR = 7 * 86400.0  # seconds: entries older than this are dropped when the file is written


def record_key(config: str | None, alias: str) -> str:
    """The key of one host: its ssh config file (``-`` for ssh's own) and its alias."""
    return f"{config or '-'}\n{alias}"


class ProbeRecords:
    """The recorded probe results in the state directory."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / RECORDS
        self.lock = Path(state_dir) / RECORDS_LOCK

    def load(self) -> dict[str, dict[str, Any]]:
        """Every well-formed entry; a missing, unsafe or corrupt file reads as empty."""
        from buildpolicy.filestate import load_state_json

        data = load_state_json(self.path)
        hosts = data.get("hosts") if isinstance(data, dict) else None
        if not isinstance(hosts, dict):
            return {}
        entries = {}
        for key, entry in hosts.items():
            if not isinstance(entry, dict):
                continue
            at, ok, reason = entry.get("at"), entry.get("ok"), entry.get("reason")
            if isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at) and isinstance(ok, bool):
                entries[str(key)] = {"ok": ok, "at": float(at), "reason": reason if isinstance(reason, str) else ""}
        return entries

    def update(self, config: str | None, results: Iterable[tuple[str, bool, str]], now: float) -> bool:
        """Record ``(alias, ok, reason)`` results of hosts probed through ``config``.

        Re-reads the file under the lock so results from other shells survive;
        returns False when the lock or the write failed (records are advisory).
        """
        results = list(results)
        if not results:
            return True

        def change(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            entries = {k: v for k, v in entries.items() if now - KEEP_FOR < v["at"] <= now + 60}
            for alias, ok, reason in results:
                entries[record_key(config, alias)] = {"ok": ok, "at": now, "reason": reason}
            return entries

        return merge_hosts(self.path, self.lock, self.load, change)


def merge_hosts(path: Path, lock: Path, load, change) -> bool:
    """Read-modify-write of a ``{"version": 1, "hosts": {...}}`` state file (the down cache,
    the probe records): re-read under the lock so a concurrent shell's entries survive, let
    ``change`` turn the entries into the new ones, write them atomically. False when the
    lock or the write failed (both files are advisory)."""
    import json

    from buildpolicy.filestate import write_state
    from buildpolicy.run.locks import locked

    with locked(lock, timeout=2.0) as held:
        if not held:
            return False
        payload = json.dumps({"version": 1, "hosts": change(load())}, indent=1, sort_keys=True).encode()
        try:
            write_state(path, payload)
        except OSError:
            return False
    return True


@frozen
class Recorded:
    """What the records say about a host list, in configured order."""

    host: str | None  # the first host recorded up, or None
    lines: tuple[str, ...]  # one per host considered, for the reason
    unknown: tuple[str, ...]  # hosts before the winner with no usable result
    refresh: bool  # a result relied on is missing or older than REFRESH_AFTER
    oldest: float | None = None  # when the oldest result relied on was recorded


def read(state_dir: Path, config: str | None, hosts: Iterable[str], now: float) -> Recorded:
    """Decide from the records: the first host recorded up in ``hosts``' order wins."""
    entries = ProbeRecords(state_dir).load()
    lines: list[str] = []
    unknown: list[str] = []
    refresh = False
    times: list[float] = []
    for alias in dict.fromkeys(hosts):
        entry = entries.get(record_key(config, alias))
        age = now - entry["at"] if entry else None
        if entry is None or not -60 <= age <= USABLE_FOR:
            unknown.append(alias)
            refresh = True
            lines.append(f"{alias}: no probe result in the last {USABLE_FOR / 60:g} minutes")
            continue
        refresh = refresh or age > REFRESH_AFTER
        times.append(entry["at"])
        state = "up" if entry["ok"] else "down"
        lines.append(f"{alias}: {state} when probed {max(age, 0):.0f}s ago ({entry['reason']})")
        if entry["ok"]:
            return Recorded(alias, tuple(lines), tuple(unknown), refresh, min(times))
    return Recorded(None, tuple(lines), tuple(unknown), refresh, min(times, default=None))

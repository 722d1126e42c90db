"""The probe cache: results of expensive probes keyed by the identity of the binary run.

One JSON file in the cache dir. A key holds the binary's path, size and mtime_ns,
so replacing or updating a binary invalidates its entries without any bookkeeping.
A corrupt, unreadable or unsafe file (``filestate.read_state``: a FIFO, a huge
file, another user's) is ignored and rebuilt; a failed write is not fatal.
"""

from __future__ import annotations

Any = object  # annotations only; `typing` costs milliseconds on the replay path

import os

# No json or pathlib imported here: the warm replay reads this cache (json's decoder
# imports re; pathlib imports fnmatch, re and urllib.parse). Writing the file imports json.

CACHE_FILE = "probes.json"
VERSION = 1
# Old identities are never hit again; keeping the newest entries bounds the file.
MAX_ENTRIES = 64


def binary_identity(path: str | os.PathLike) -> list | None:
    """``[path, size, mtime_ns]`` of the file at ``path`` (symlinks followed), or None if missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [os.fspath(path), st.st_size, st.st_mtime_ns]


def cache_key(kind: str, *parts: Any) -> str:
    """A cache key for probe ``kind`` over JSON-serialisable ``parts``."""
    from buildpolicy.filestate import json_text

    return json_text([kind, *parts])


class ProbeCache:
    """Read-through access to ``<cache_dir>/probes.json``; loaded on first use."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._entries: dict[str, Any] | None = None

    @classmethod
    def for_context(cls, ctx) -> ProbeCache:
        """The probe cache of ``ctx.cache_dir``."""
        return cls(os.path.join(ctx.cache_dir, CACHE_FILE))

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            from buildpolicy.filestate import load_state_json

            self._entries = {}
            data = load_state_json(self.path)  # None when missing or corrupt: start afresh
            if isinstance(data, dict) and data.get("version") == VERSION and isinstance(data.get("entries"), dict):
                self._entries = data["entries"]
        return self._entries

    def get(self, key: str) -> Any:
        """The value stored under ``key``, or None."""
        entry = self._load().get(key)
        return entry.get("value") if isinstance(entry, dict) else None

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` and write the file atomically (errors ignored).

        A value JSON cannot hold (a TOML date) is not stored: the probe runs again next time,
        and the entries already held stay writable."""
        from buildpolicy.filestate import json_text

        try:
            json_text(value)
        except (TypeError, ValueError):
            return
        entries = self._load()
        entries.pop(key, None)
        entries[key] = {"value": value}  # re-insert: dict order is age order
        while len(entries) > MAX_ENTRIES:
            del entries[next(iter(entries))]
        import json

        data = json.dumps({"version": VERSION, "entries": entries}, indent=0).encode()
        try:
            from buildpolicy.filestate import write_state

            write_state(self.path, data)
        except OSError:
            pass  # a read-only or refused cache dir costs speed, never correctness

"""Where replay records live: one file per invocation, named by a digest of it.

Standard library only: the warm ``env`` looks its record up here at every prompt.
"""

from __future__ import annotations

import os

from buildpolicy.filestate import cache_dir, read_state, seal, unseal, write_state

FORMAT = 2  # 2: sealed (filestate.seal), so a damaged record is never unmarshalled
MEMO_DIR = "replay"
MAX_RECORDS = 64  # distinct invocations (directory × environment × arguments) kept
ENV_SWITCH = "BUILDPOLICY_REPLAY"
# Changed by every shell between prompts; nothing buildpolicy decides reads them.
VOLATILE_VARIABLES = frozenset({"_", "OLDPWD"})


def invocation_key(argv: list[str], cwd: str, environ) -> str:
    """What identifies an invocation: a digest of the arguments, the working directory
    and the environment. Only the digest is stored: environments hold secrets."""
    try:
        from _blake2 import blake2b  # hashlib's own, without importing hashlib (2.5 ms)
    except ImportError:  # pragma: no cover - another Python implementation
        from hashlib import blake2b

    invocation = (
        tuple(argv),
        cwd,
        tuple(sorted((k, v) for k, v in environ.items() if k not in VOLATILE_VARIABLES)),
    )
    return blake2b(repr(invocation).encode("utf-8", "surrogateescape"), digest_size=32).hexdigest()


def record_path(key: str, environ) -> str:
    """The file holding the record of ``key``'s invocation."""
    return os.path.join(cache_dir(environ), MEMO_DIR, f"{key[:24]}.marshal")


def enabled(environ) -> bool:
    """Whether replaying (and recording) is on: ``BUILDPOLICY_REPLAY`` is not off/0/false/no."""
    return environ.get(ENV_SWITCH, "").strip().lower() not in ("off", "0", "false", "no")


def load(key: str, environ):
    """The record stored for ``key``, or None when there is none or it is not a record of it.

    Any error reading it is the caller's to treat as "no record"; a record that is
    not a regular file of this user's, in a directory only they can write, is
    refused (``filestate.read_state``): its output would be evaluated by a shell.
    A damaged one fails its seal and is never unmarshalled.
    """
    import marshal

    record = marshal.loads(unseal(read_state(record_path(key, environ))))
    if not (isinstance(record, dict) and record.get("format") == FORMAT and record.get("key") == key):
        return None
    return record


def save(argv: list[str], cwd: str, environ, record: dict) -> None:
    """Write ``record`` for this invocation (atomically); errors only cost speed."""
    if not enabled(environ):
        return
    import marshal

    key = invocation_key(argv, cwd, environ)
    path = record_path(key, environ)
    record = {"format": FORMAT, "key": key, **record}
    try:
        data = marshal.dumps(record)
    except ValueError:
        return  # a value marshal cannot hold: just not recorded
    try:
        write_state(path, seal(data), mode=0o600)  # what a user's prompt printed is theirs alone
        _prune(os.path.dirname(path))
    except OSError:
        pass


def _prune(directory: str) -> None:
    """Keep the newest MAX_RECORDS records."""
    try:
        entries = [entry for entry in os.scandir(directory) if entry.name.endswith(".marshal")]
        if len(entries) <= MAX_RECORDS:
            return
        entries.sort(key=lambda entry: entry.stat().st_mtime_ns)
        for entry in entries[: len(entries) - MAX_RECORDS]:
            os.unlink(entry.path)
    except OSError:
        pass

"""The action log: one JSON line per ``exec``, and its summary for ``buildpolicy log``.

``$XDG_STATE_HOME/buildpolicy/actions.jsonl`` gets one object per line::

    {"v": 2, "started_at": "2026-05-05T09:12:03.412Z", "duration_ms": 75480.2,
     "execution_duration_ms": 73214.5, "gate_wait_ms": 2011.0, "exit_code": 0,
     "success": true, "action": "build", "profile": "selfdev",
     "execution": {"mode": "local"}, "target_dir": "/src/app/target",
     "rustflags": "-C link-arg=-fuse-ld=mold", "rustflags_var": "CARGO_TARGET_…_RUSTFLAGS",
     "decisions": {"jobs": "adaptive:6 (…)", "sccache": "skipped-incremental", …},
     "argv": ["cargo", "build", "--profile", "selfdev"], "cwd": "/src/app", "workspace": "/src/app",
     "repository": {"root": "/src/app", "remote": "git@github.com:team/app.git"}}

``workspace`` (the cargo workspace root, for ``log --project``) is absent from
lines written before it; ``run_id`` names a line for ``buildpolicy log RUN_ID``.

``duration_ms`` is the whole ``exec``, from its start to the command's end
(deciding, the wait for the build gate, the command);
``execution_duration_ms`` is the command's own run time (for a remote build:
sync, run and sync back), without the gate wait, which is ``gate_wait_ms``.
(Version 1 entries had only the command's time, as ``duration_ms``.)
``repository`` is the cargo workspace root and its git remote (``origin``, else
the first one; null without one), with any credentials in the URL redacted.
Lines are appended with one ``write`` under a short lock, so concurrent
``exec``\\ s never interleave; past ``MAX_BYTES`` the file is rotated to
``actions.jsonl.1`` (one generation kept). A line that is corrupt, truncated
or of the wrong shape is skipped when reading, never fatal.

The log is private (mode 0600, like the replay records) and its ``argv`` is
redacted (``redact_argv``): the values of options that carry secrets
(``--token``, ``--password``, ``--config registries.x.token=…``…), the token
of ``cargo login`` and the password of ``https://user:password@host`` become
``<redacted>``. A log that is not a regular file of this user's (a FIFO, a
symlink to a device, another user's file) is never read or appended to.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from buildpolicy.record import frozen
from buildpolicy.filestate import read_state

LOG_NAME = "actions.jsonl"
LOCK_NAME = "actions.lock"
MAX_BYTES = 8 << 20
# A log past this (the rotation keeps it near MAX_BYTES) is not read: it is not one we wrote.
READ_LIMIT = 2 * MAX_BYTES
VERSION = 2
# "adaptive:6 (cpus=8, mem_avail=…)" varies with free memory at every run; the
# part before the parenthesis is the decision itself.
_DETAIL = re.compile(r"\s*\(.*\)\s*$")


def log_path(state_dir: Path) -> Path:
    """The action log file in ``state_dir``."""
    return Path(state_dir) / LOG_NAME


REDACTED = "<redacted>"
# Options whose value is a secret, by a word in their name (--token, --registry-token,
# --password, --api-key, --client-secret, --auth-token, --credentials…).
_SECRET_WORDS = r"(token|passw(or)?d|secret|api[-_]?key|credential|auth(?!or))"
_SECRET_OPTION = re.compile(rf"^--?[A-Za-z0-9_-]*{_SECRET_WORDS}[A-Za-z0-9_-]*$", re.IGNORECASE)
# Keys of `--config KEY=VALUE` (cargo) and `KEY=VALUE` words whose value is a secret.
_SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+(?=@)")


def _redact_assignment(text: str, config: bool = False) -> str:
    """``KEY=VALUE`` with a secret-looking KEY → ``KEY=<redacted>``; URL passwords in any word.

    A ``--config`` value is TOML, where the secret's name may be inside the value
    (``registries.x = { token = "…" }``): any secret-looking word redacts it.
    """
    key, sep, _value = text.partition("=")
    if sep and _SECRET_KEY.search(text if config else key):
        return f"{key}={REDACTED}"
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)


def redact_argv(argv: Iterable[str]) -> list[str]:
    """``argv`` with secrets replaced by ``<redacted>``, for what is written to disk.

    Values of options named like a secret (``--token X``, ``--token=X``,
    ``--password``, ``--api-key``…), ``--config KEY=VALUE`` / ``-c`` pairs and
    bare ``KEY=VALUE`` words whose key names one (``registries.x.token=…``,
    ``CARGO_REGISTRY_TOKEN=…``), the argument of ``cargo login``, and the password
    in ``scheme://user:password@host``. Everything else is kept as given.
    """
    words = [str(word) for word in argv]
    out: list[str] = []
    secret_next = config_next = False
    login = False
    for index, word in enumerate(words):
        if secret_next:
            out.append(REDACTED)
            secret_next = False
            continue
        if config_next:
            out.append(_redact_assignment(word, config=True))
            config_next = False
            continue
        name, sep, _value = word.partition("=")
        if word.startswith("-") and _SECRET_OPTION.match(name):
            if sep:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(word)
                secret_next = True
            continue
        if word in ("--config", "-c"):
            out.append(word)
            config_next = True
            continue
        if name == "--config" and sep:
            out.append(f"--config={_redact_assignment(word[len('--config='):], config=True)}")
            continue
        if login and not word.startswith("-"):
            out.append(REDACTED)  # `cargo login <token>`
            continue
        if word == "login" and index > 0 and _is_cargo_like(words[: index]):
            login = True
        out.append(_redact_assignment(word))
    return out


def _is_cargo_like(before: list[str]) -> bool:
    """Whether ``login`` after these words is cargo's subcommand (``cargo [+tc] [flags] login``)."""
    program = os.path.basename(before[0])
    return program in ("cargo", "cargo.exe") and all(w.startswith(("-", "+")) for w in before[1:])


def append(state_dir: Path, entry: Mapping[str, Any]) -> None:
    """Append ``entry`` as one line; rotate a full log. Raises OSError (callers warn).

    The log is created 0600 (and an older 0644 one narrowed); a log that is not a
    regular file (a FIFO, a symlink) is replaced by a new one, and a state
    directory another user could write to is refused (``filestate.Refused``).
    """
    from buildpolicy.filestate import Refused, unsafe_directory
    from buildpolicy.run.locks import locked

    path = log_path(state_dir)
    line = (json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogateescape")
    reason = unsafe_directory(path.parent)
    if reason is None and not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        reason = unsafe_directory(path.parent)
    if reason is not None:
        raise Refused(errno.EPERM, reason)
    with locked(Path(state_dir) / LOCK_NAME, timeout=1.0):
        # Without the lock (a stuck holder) the O_APPEND write of one line is still
        # atomic enough on local filesystems: better a rare risk than a lost entry.
        try:
            if path.stat().st_size + len(line) > MAX_BYTES:
                os.replace(path, path.with_name(LOG_NAME + ".1"))
        except FileNotFoundError:
            pass
        fd = _open_for_append(path)
        try:
            # A torn last line (a crash mid-write, a damaged file) must not swallow
            # this entry: start it on a line of its own.
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
        finally:
            os.close(fd)


def _open_for_append(path: Path) -> int:
    """A descriptor appending to the regular file ``path`` (mode 0600), replacing anything else there."""
    flags = (os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_NOFOLLOW", 0))
    uid = getattr(os, "geteuid", lambda: None)()
    for _attempt in range(2):
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            if exc.errno != errno.ELOOP:  # ELOOP: a symlink (to /dev/zero, to someone's file)
                raise
        else:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and uid in (None, st.st_uid):
                if stat.S_IMODE(st.st_mode) != 0o600:
                    os.fchmod(fd, 0o600)  # a log from before it was private
                return fd
            os.close(fd)
        os.unlink(path)  # not a log of ours: a new one replaces it
    raise OSError(errno.EEXIST, f"{path} keeps being replaced by something that is not a log")


def run_ms(entry: Mapping[str, Any]) -> float:
    """The command's own run time of an entry: ``execution_duration_ms``, or the
    ``duration_ms`` of a version 1 entry (which measured just that)."""
    execution = entry.get("execution_duration_ms")
    if isinstance(execution, (int, float)) and not isinstance(execution, bool) and math.isfinite(execution):
        return float(execution)
    return float(entry["duration_ms"])


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
            data = read_state(file, READ_LIMIT)  # never a FIFO's wait, /dev/zero's endless read
        except FileNotFoundError:
            continue
        except OSError:
            skipped += 1  # an unreadable (or refused) file counts as one skipped unit
            continue
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw.decode("utf-8", "surrogateescape"))
            except (ValueError, RecursionError):
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


@frozen
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
        durations = [run_ms(run) for run in runs]
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


def run_id(entry: Mapping[str, Any]) -> str:
    """A short stable id of a logged run (``buildpolicy log RUN_ID`` shows it): a digest of its line."""
    import hashlib

    text = json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=5).hexdigest()


def project_root(cwd: Path) -> Path:
    """The project a run in ``cwd`` belongs to, for ``log --project``: the cargo workspace
    root, else the directory of the nearest buildpolicy.toml, else ``cwd`` itself."""
    from buildpolicy.paths import find_profile
    from buildpolicy.run.workspace import workspace_root

    root = workspace_root(cwd)
    if root is None:
        profile = find_profile(cwd)
        root = profile.parent if profile is not None else cwd
    return Path(os.path.abspath(root))


def in_project(entry: Mapping[str, Any], root: Path) -> bool:
    """Whether a logged run belongs to the project at ``root``: its recorded workspace is
    ``root``, or (a line without one) it ran in or below ``root``. A line that says
    neither (an old format) cannot be placed and counts for every project."""
    workspace, cwd = entry.get("workspace"), entry.get("cwd")
    if isinstance(workspace, str):
        return os.path.abspath(workspace) == str(root)
    if not isinstance(cwd, str):
        return True
    cwd = os.path.abspath(cwd)
    return cwd == str(root) or cwd.startswith(str(root).rstrip(os.sep) + os.sep)


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hours?|d|days?|w|weeks?)\s*(ago)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def since_timestamp(text: str, now: float) -> str:
    """The ``started_at`` string runs of ``log --since TEXT`` are at or after.

    ``TEXT`` is a duration back from ``now`` (``90m``, ``2h``, ``3d``, ``1w``), a date
    (``2026-05-01``, local midnight) or a local date and time (``2026-05-01T09:30``,
    ``2026-05-01 09:30``); a time with a zone (``…Z``, ``…+02:00``) is taken as given.
    ValueError saying the accepted forms otherwise.
    """
    import datetime

    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2).lower()
        moment = now - amount * _UNIT_SECONDS["m" if unit.startswith("min") else unit[0]]
        stamp = datetime.datetime.fromtimestamp(moment, tz=datetime.timezone.utc)
    else:
        try:
            parsed = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"--since {text!r}: expected a duration (90m, 2h, 3d, 1w) or a date and time "
                             "(2026-05-01, 2026-05-01T09:30)") from None
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()  # a local time, as people type it
        stamp = parsed.astimezone(datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"

"""The warm ``env`` replay: reuse a previous run's output while nothing it depended on changed.

``buildpolicy env`` runs at every shell prompt, and most prompts ask the same question
as the one before. A full run records what its output depended on; the next identical
invocation re-checks exactly that, and prints the recorded output when all of it holds:

- the invocation itself: the arguments, the working directory and the whole environment
  (except ``_`` and ``OLDPWD``, which every shell changes between prompts and no
  decision reads);
- every file and directory the run read, listed or looked for, by inode, size, mtime
  and ctime taken when it was read: the policy files of all layers and the directories
  listed to find them, the profile files looked for above the working directory, the
  trust record, files plugins name, the code of buildpolicy, its plugins and what they
  import, and the ``sys.path`` directories (installing or removing a plugin
  distribution changes them). A run during which one of them changed is not recorded;
- every fact the output depended on, probed again with the same probe functions: the
  exact value, or, where a rule or plugin only compared it with a constant
  (``memory.available < 8GiB``), the outcome of each such comparison. So free memory
  may drift between prompts without invalidating anything, and crossing a threshold a
  rule or plugin cares about does.

A run is recorded only when every plugin that decides something declares itself
replayable (``BUILDPOLICY_REPLAYABLE = True`` at module level: its decisions depend on
nothing but what it reads through its ``DecideContext``, the conditions it declares,
and the files it names with ``ctx.depends_on_file``) and none opted out for this run
(``ctx.not_replayable(why)``, e.g. remote builds, which probe hosts). Facts overridden
with ``--facts``, plugin-declared facts, custom output formats and a probe that would
have to start a process all make the run not replayable. Anything unexpected while
replaying means "not replayed": the full run then decides, and records again.

This module is the hot path of the warm case: standard library only, no attrs, no
pluggy, no policy loading. ``BUILDPOLICY_REPLAY=off`` turns it off.
"""

from __future__ import annotations

import marshal
import os
import sys

from buildpolicy.facts.ctxbase import ContextMethods

FORMAT = 1
MEMO_DIR = "replay"
MAX_RECORDS = 64  # distinct invocations (directory × environment × arguments) kept
ENV_SWITCH = "BUILDPOLICY_REPLAY"
# Changed by every shell between prompts; nothing buildpolicy decides reads them.
VOLATILE_VARIABLES = frozenset({"_", "OLDPWD"})


class NotReplayable(BaseException):
    """Raised inside a replayed probe that would start a process: give up replaying.

    A BaseException so that no probe's ``except Exception`` turns it into a null fact.
    """


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


def cache_dir(environ) -> str:
    """``$XDG_CACHE_HOME/buildpolicy`` (default ``~/.cache/buildpolicy``), as ``Paths`` resolves it."""
    xdg = environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "buildpolicy")
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".cache", "buildpolicy")


def record_path(key: str, environ) -> str:
    """The file holding the record of ``key``'s invocation."""
    return os.path.join(cache_dir(environ), MEMO_DIR, f"{key[:24]}.marshal")


def stat_token(path) -> str:
    """Inode, size, mtime and ctime of a file or directory, symlinks followed
    (``missing`` when absent, ``dangling`` for a symlink to nothing).

    A file replaced by another (a rename, an upgrade) gets a new inode; an edit
    changes mtime and ctime, and ctime cannot be set back even by a copy that
    preserves mtimes. A directory's times change when entries come or go.
    """
    try:
        st = os.stat(path)
    except OSError:
        return "dangling" if os.path.lexists(path) else "missing"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


# The kernel stamps files from a clock that lags the wall clock by up to a tick
# (1-10 ms). Filesystems with coarser timestamps (FAT: 2 s) are not covered.
RACY_MARGIN_NS = 20_000_000


def racy(token: str, since_ns: int) -> bool:
    """Whether the file behind ``token`` may have changed at or after ``since_ns``
    (the start of the run that read it), so that a read during the run and a later
    write could carry the same token (the "racy git" problem). Results built from
    such a file are not kept; the next run, a moment later, keeps them."""
    fields = token.split(":")
    return len(fields) == 4 and int(fields[3]) >= since_ns - RACY_MARGIN_NS


def sys_path_state() -> str:
    """A cheap fingerprint of the installed distributions: each ``sys.path`` entry with its mtime.

    Installing or removing a distribution changes its site directory's mtime.
    ``sys.path[0]`` is left out: it is the script's directory or the working
    directory (``python -m``), where distributions are not installed.
    """
    parts = []
    for entry in sys.path[1:]:
        if entry in ("", "."):
            continue
        try:
            parts.append(f"{entry}={os.stat(entry).st_mtime_ns}")
        except OSError:
            parts.append(f"{entry}=-")
    return "\n".join(parts)


def enabled(environ) -> bool:
    """Whether replaying (and recording) is on: ``BUILDPOLICY_REPLAY`` is not off/0/false/no."""
    return environ.get(ENV_SWITCH, "").strip().lower() not in ("off", "0", "false", "no")


# --------------------------------------------------------------------------------------
# Replaying (the warm path)
# --------------------------------------------------------------------------------------


def try_replay(argv: list[str]) -> int | None:
    """Print the recorded output of this ``env`` invocation if it still holds; return the
    exit status, or None when the full run must decide (no record, or something changed)."""
    environ = os.environ
    if not enabled(environ):
        return None
    try:
        key = invocation_key(argv, os.getcwd(), environ)
        with open(record_path(key, environ), "rb") as handle:
            record = marshal.load(handle)
        if not (isinstance(record, dict) and record.get("format") == FORMAT and record.get("key") == key):
            return None
        if not still_valid(record):
            return None
    except (Exception, NotReplayable):  # noqa: BLE001 - a replay never fails a prompt: run in full
        return None
    try:
        sys.stdout.buffer.write(record["stdout"])
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader is gone: exit quietly, as a full run does. What is still
        # buffered would fail again at exit, so stdout becomes /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, AttributeError):
        return None  # the full run reports the write error properly (exit 74)
    if record["stderr"]:  # after stdout: a failed write above must not print warnings twice
        sys.stderr.write(record["stderr"])
        sys.stderr.flush()
    return 0


def still_valid(record: dict) -> bool:
    """Whether every recorded input still holds: files, installed distributions, facts."""
    for path, token in record["files"]:
        if stat_token(path) != token:
            return False
    if record["syspath"] != sys_path_state():
        return False
    return facts_hold(record)


def facts_hold(record: dict) -> bool:
    """Probe again every fact the output depended on; compare values or comparison outcomes.

    Raises NotReplayable when a probe would have to start a process.
    """
    from buildpolicy.exprops import compare
    from buildpolicy.facts import subproc

    probes = _Replay(record)
    subproc.REPLAYING = True
    try:
        for name, value, conditions in record["deps"]:
            current = probes.value(name)
            if conditions is None:
                if not _same(current, value):
                    return False
                continue
            for op, constant, outcome in conditions:
                if not _same(compare(op, current, constant), outcome):
                    return False
        return True
    finally:
        subproc.REPLAYING = False


def _same(a, b) -> bool:
    # True == 1 in Python; a fact that turned from a bool into an int has changed.
    return type(a) is type(b) and a == b


class _ReplayContext(ContextMethods):
    """The fields of ``ProbeContext`` that probes read, rebuilt from a record without attrs.

    The environment is not in the record: it is the caller's, with what a previous
    ``env`` changed undone, exactly as the full run computes it.
    """

    def __init__(self, fields: dict):
        from pathlib import Path

        from buildpolicy.envstate import restore_baseline

        self.cwd = Path(fields["cwd"])
        self.environ = restore_baseline(os.environ)[0]
        self.cargo_argv = fields["cargo_argv"]
        self.profile_flag = fields["profile_flag"]
        self.default_profile = fields["default_profile"]
        self.project_root = None if fields["project_root"] is None else Path(fields["project_root"])
        self.cache_dir = Path(fields["cache_dir"])
        self.root = Path(fields["root"])
        self.platform = fields["platform"]


class _Replay:
    """A minimal fact store: the recorded probe functions, run again, memoized."""

    def __init__(self, record: dict):
        self.probes = record["probes"]
        self.ctx = _ReplayContext(record["context"])
        self.values: dict = {}
        self.shared_values: dict = {}
        self.probing: set = set()
        self.cache = None

    def value(self, name: str):
        if name in self.values:
            return self.values[name]
        if name not in self.probes or name in self.probing:
            raise NotReplayable(f"fact {name} was not probed by the recorded run")
        import importlib

        from buildpolicy.facts.coerce import matches_type
        from buildpolicy.facts.unknown import FactUnknown

        module, function, fact_type = self.probes[name]
        self.probing.add(name)
        try:
            value = getattr(importlib.import_module(f"buildpolicy.facts.{module}"), function)(_Session(self, name))
        except FactUnknown:
            value = None
        except Exception:  # noqa: BLE001 - the full run would record "probe failed"; let it
            raise NotReplayable(f"probe of {name} failed") from None
        finally:
            self.probing.discard(name)
        if value is not None and not matches_type(fact_type, value):
            value = None
        self.values[name] = value
        return value


class _Session:
    """What a built-in probe function receives (the ``ProbeSession`` interface)."""

    __slots__ = ("replay", "ctx", "name")

    def __init__(self, replay: _Replay, name: str):
        self.replay = replay
        self.ctx = replay.ctx
        self.name = name

    def fact(self, name: str):
        """The value of another fact."""
        return self.replay.value(name)

    def shared(self, key: str, compute):
        """``compute()`` once per replay; a FactUnknown it raises is re-raised every time."""
        from buildpolicy.facts.unknown import FactUnknown

        shared = self.replay.shared_values
        if key not in shared:
            try:
                shared[key] = (True, compute())
            except FactUnknown as exc:
                shared[key] = (False, str(exc))
        ok, value = shared[key]
        if not ok:
            raise FactUnknown(value)
        return value

    @property
    def cache(self):
        """The on-disk probe cache."""
        if self.replay.cache is None:
            from buildpolicy.facts.cache import ProbeCache

            self.replay.cache = ProbeCache.for_context(self.ctx)
        return self.replay.cache

    def note_cached(self) -> None:
        """Where a value came from does not matter to the replay."""


# --------------------------------------------------------------------------------------
# Recording (the full path)
# --------------------------------------------------------------------------------------


def save(argv: list[str], cwd: str, environ, record: dict) -> None:
    """Write ``record`` for this invocation (atomically); errors only cost speed."""
    if not enabled(environ):
        return
    key = invocation_key(argv, cwd, environ)
    path = record_path(key, environ)
    record = {"format": FORMAT, "key": key, **record}
    try:
        data = marshal.dumps(record)
    except ValueError:
        return  # a value marshal cannot hold: just not recorded
    from buildpolicy.paths import atomic_write

    try:
        atomic_write(path, data, mode=0o600)  # what a user's prompt printed is theirs alone
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

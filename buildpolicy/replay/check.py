"""Replay a recorded ``env`` when every input it recorded still holds (the warm path).

Standard library only, no attrs, no pluggy, no policy loading: this runs at every
prompt. Anything unexpected means "not replayed", and the full run decides.
"""

from __future__ import annotations

import os
import sys
import time

from buildpolicy.facts.ctxbase import ContextMethods
from buildpolicy.facts.unknown import FactUnknown, NotReplayable
from buildpolicy.filestate import stat_token, sys_path_state
from buildpolicy.replay.store import enabled, invocation_key, load


def try_replay(argv: list[str]) -> int | None:
    """Print the recorded output of this ``env`` invocation if it still holds; return the
    exit status, or None when the full run must decide (no record, or something changed)."""
    environ = os.environ
    if not enabled(environ):
        return None
    try:
        record = load(invocation_key(argv, os.getcwd(), environ), environ)
        if record is None or not still_valid(record):
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
    summary = record.get("summary")  # what the output changes, for a person at a terminal
    text = record["stderr"] + (summary if summary and _is_terminal(sys.stderr) else "")
    if text:  # after stdout: a failed write above must not print warnings twice
        sys.stderr.write(text)
        sys.stderr.flush()
    return 0


def _is_terminal(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


def still_valid(record: dict) -> bool:
    """Whether every recorded input still holds: its expiry time, files, installed
    distributions, facts."""
    expires = record.get("expires")
    if expires is not None and not time.time() < expires:
        return False
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
    from buildpolicy.facts import subproc
    from buildpolicy.policy.expr.ops import compare

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
    ``env`` changed undone, exactly as the full run computes it. Paths are strings, not
    ``pathlib.Path`` as in ``ProbeContext``: probes read them with ``os.path``, which takes
    both, and pathlib (with fnmatch, re and urllib.parse) costs a prompt milliseconds.
    """

    def __init__(self, fields: dict):
        from buildpolicy.engine.envstate import restore_baseline

        self.cwd = fields["cwd"]
        self.environ = restore_baseline(os.environ)[0]
        self.cargo_argv = fields["cargo_argv"]
        self.profile_flag = fields["profile_flag"]
        self.default_profile = fields["default_profile"]
        self.project_root = fields["project_root"]
        self.allowed_root = fields.get("allowed_root")  # records written before it existed: not allowed
        self.cache_dir = fields["cache_dir"]
        self.root = fields["root"]
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
        from buildpolicy.facts.coerce import matches_type

        module, function, fact_type = self.probes[name]
        self.probing.add(name)
        try:
            # __import__ and sys.modules rather than importlib.import_module: importlib is one import more.
            __import__(f"buildpolicy.facts.{module}")
            value = getattr(sys.modules[f"buildpolicy.facts.{module}"], function)(_Session(self, name))
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

"""Warnings about handled situations, said once per change of situation.

A ``HandledWarning`` (``buildpolicy.model``) describes something buildpolicy
already copes with: the caller's ``RUSTFLAGS`` shadow the target's flags, so
the decided flags join ``RUSTFLAGS``. Repeated at every prompt it is noise, so
``env`` and ``exec`` say it when it is new for this project (or directory) and
stay quiet while the situation lasts; once a full evaluation finds it gone,
its return is new again. A warm replay is the same situation by definition: it
repeats the ordinary warnings only. ``explain`` and ``doctor`` always list it.

The memory is one small state file, ``<state dir>/said.json``: for each scope
the digests of the handled warnings last said there. A missing, corrupt or
refused file means "nothing said yet"; a write that fails means saying it again
next time, never an error. Two prompts racing may both say it: harmless.
"""

from __future__ import annotations

from pathlib import Path

from buildpolicy.filestate import json_text, load_state_json, sha256_hex, write_state
from buildpolicy.model import HandledWarning

FILE = "said.json"
VERSION = 1
MAX_SCOPES = 256  # projects remembered; the least recently changed are forgotten


def _digest(text: str) -> str:
    return sha256_hex(text.encode("utf-8", "surrogateescape"))[:24]


def to_say(warnings, state_dir: Path, scope: str) -> list[str]:
    """The warnings to print now: every ordinary warning, and each handled one that was
    not said in ``scope`` since it last appeared. Remembers what is said."""
    handled = {_digest(w): w for w in warnings if isinstance(w, HandledWarning)}
    path = Path(state_dir) / FILE
    data = load_state_json(path)
    scopes = data.get("scopes") if isinstance(data, dict) and data.get("version") == VERSION else None
    if not isinstance(scopes, dict):
        scopes = {}
    before = scopes.get(scope)
    # Only digests count: anything else in a damaged file is "not said yet".
    said = {item for item in before if isinstance(item, str)} if isinstance(before, list) else set()
    if sorted(said) != sorted(handled):
        scopes.pop(scope, None)
        if handled:
            scopes[scope] = sorted(handled)  # last: the most recently changed
        _save(path, dict(list(scopes.items())[-MAX_SCOPES:]))
    return [w for w in warnings if not isinstance(w, HandledWarning) or _digest(w) not in said]


def to_say_for(result) -> list[str]:
    """``to_say`` for an evaluation's warnings, in its project (or its directory outside one)."""
    scope = str(result.policy_set.profile_path or result.facts.ctx.cwd)
    return to_say(result.warnings, result.paths.state_dir, scope)


def ordinary(warnings) -> list[str]:
    """The warnings that are said every time (what a replay of this run repeats)."""
    return [w for w in warnings if not isinstance(w, HandledWarning)]


def _save(path: Path, scopes: dict) -> None:
    try:
        write_state(path, json_text({"version": VERSION, "scopes": scopes}, compact=False).encode())
    except OSError:  # filestate.Refused too
        pass  # said again next time: noise, never a failure

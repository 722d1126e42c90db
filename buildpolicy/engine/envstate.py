"""Make ``eval "$(buildpolicy env)"`` at every prompt idempotent.

``env`` exports ``BUILDPOLICY_ENV_STATE``: which variables it set (with a hash
of the value it set) and what those variables held before. The next run
reconstructs the caller's own environment from it, so a value buildpolicy set
last time is not mistaken for the user's inherited value ("inherited wins"),
RUSTFLAGS merged last time is not merged again, and a variable set last time
but not wanted now is restored or unset.

The record travels in the environment, where anything could have written it
(a CI step's ``$GITHUB_ENV``, a shell started by ``exec``), so it is only
believed about **build variables** (``buildpolicy.policy.buildvars``), the
names a project may set without ``buildpolicy allow``: a record naming
``LD_PRELOAD``, ``PATH`` or ``BUILDPOLICY_SITE_DIR`` restores and unsets
nothing. A variable outside that set that a trusted user or site rule set is
therefore not undone by the next ``env``: it stays as the shell has it, like a
value the user set (so a changed value of such a rule needs ``force = true``, or
a new shell, to replace the one exported before).
"""

from __future__ import annotations

import zlib

TYPE_CHECKING = False  # not `from typing import`: the warm replay imports this module
if TYPE_CHECKING:  # pragma: no cover - typing only
    from collections.abc import Mapping

from buildpolicy.filestate import json_text, json_value
from buildpolicy.policy.buildvars import STATE_VAR, is_build_variable

__all__ = ["STATE_VAR", "restore_baseline", "encode_state"]


def _digest(value: str) -> str:
    # Only tells "still the value we set" from "changed since": CRC-32 plus the
    # length is enough for that and avoids importing hashlib at every prompt.
    data = value.encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{len(data):x}"


def restore_baseline(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str | None]]:
    """Return the caller's environment without what a previous ``env`` did.

    Also returns the names a previous run touched, mapped to the value the
    caller had before it (None: it was unset). A variable the user changed
    since (its hash differs) is the user's and stays.
    """
    baseline = dict(environ)
    raw = baseline.pop(STATE_VAR, None)
    if not raw:
        return baseline, {}
    try:
        state = json_value(raw)
        was_set = dict(state["set"])
        original = dict(state["orig"])
    except (ValueError, KeyError, TypeError):
        return baseline, {}  # a corrupt state is ignored, never fatal
    touched: dict[str, str | None] = {}
    # Only build variables: a record must not be able to put anything else back.
    was_set = {name: digest for name, digest in was_set.items() if isinstance(name, str) and is_build_variable(name)}
    original = {
        name: before for name, before in original.items()
        if isinstance(name, str) and is_build_variable(name) and (before is None or isinstance(before, str) and "\0" not in before)
    }
    for name, digest in was_set.items():
        if name in environ and _digest(environ[name]) == digest:
            before = original.get(name)
            touched[name] = before
            if isinstance(before, str):
                baseline[name] = before
            else:
                baseline.pop(name, None)
    for name, before in original.items():
        if name not in was_set and name not in environ and isinstance(before, str):
            baseline[name] = before  # we unset it last time
            touched[name] = before
    return baseline, touched


def recorded_set(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The build variables the ``env`` that made ``environ`` set, each with the digest of
    its value then, or None when ``environ`` carries no (readable) record."""
    raw = environ.get(STATE_VAR)
    if not raw:
        return None
    try:
        was_set = dict(json_value(raw)["set"])
    except (ValueError, KeyError, TypeError):
        return None
    return {name: digest for name, digest in was_set.items()
            if isinstance(name, str) and isinstance(digest, str) and is_build_variable(name)}


def digest_matches(value: str | None, digest: str) -> bool:
    """Whether ``value`` is still the one a record's ``digest`` was taken of."""
    return value is not None and _digest(value) == digest


def encode_state(set_env: Mapping[str, str], unset: list[str], baseline: Mapping[str, str]) -> str:
    """The value of ``BUILDPOLICY_ENV_STATE`` for this run's output (build variables only:
    the next run believes nothing else from it)."""
    state = {
        "set": {name: _digest(value) for name, value in sorted(set_env.items()) if is_build_variable(name)},
        "orig": {name: baseline.get(name) for name in sorted({*set_env, *unset}) if name in baseline and is_build_variable(name)},
    }
    return json_text(state, sort_keys=True)

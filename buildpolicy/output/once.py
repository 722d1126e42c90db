"""Warnings about the inherited environment, said once at the prompt.

A bad value the caller's environment carries (``CARGO_BUILD_JOBS=abc``,
``BUILDPOLICY_JOBS=four``) or a ``BUILDPOLICY_`` variable no knob is named
after (``BUILDPOLICY_LINKR``) is handled (ignored, with a fallback), so ``env``
at the prompt says it once, when it first appears, not before every prompt.
``exec``, ``explain`` and ``doctor`` say it every time.

What was said is kept in ``$XDG_STATE_HOME/buildpolicy/said-once.json``: a
digest of each warning with the last time a full run saw it. A warning seen
again is not repeated; one not seen for ``FORGET_AFTER`` is a new situation
when it comes back. A damaged or refused file is ignored (the warning is said
again) and rewritten. The warm replay never prints these warnings: they are
not part of what it records.
"""

from __future__ import annotations

import json
import os
import time

STATE_NAME = "said-once.json"
FORGET_AFTER = 30 * 24 * 3600.0
MAX_ENTRIES = 256


def _digest(warning: str) -> str:
    from hashlib import blake2b

    return blake2b(warning.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()


def unsaid(warnings, state_dir) -> list[str]:
    """The ``warnings`` not said before (in order), remembering all of them as said now."""
    from buildpolicy.filestate import load_state_json, write_state

    if not warnings:
        return []
    path = os.path.join(os.fspath(state_dir), STATE_NAME)
    now = time.time()
    seen = load_state_json(path)
    if not isinstance(seen, dict):
        seen = {}
    seen = {key: when for key, when in seen.items()
            if isinstance(when, (int, float)) and not isinstance(when, bool) and now - when < FORGET_AFTER}
    fresh = [warning for warning in warnings if _digest(warning) not in seen]
    for warning in warnings:
        seen[_digest(warning)] = now
    if len(seen) > MAX_ENTRIES:
        seen = dict(sorted(seen.items(), key=lambda item: item[1])[-MAX_ENTRIES:])
    try:
        write_state(path, json.dumps(seen, sort_keys=True).encode("ascii"), mode=0o600)
    except OSError:
        pass  # not remembered: said again next time, which is only noise
    return fresh

"""Build the record a warm ``env`` replays (``buildpolicy.replay.check``) from a finished run."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.filestate import racy, stat_token, sys_path_state


# Facts computed from the invocation alone (the cargo argv, the caller's
# environment, the policies' default profile), which the record's key and files
# already pin: their values are not stored (an env.X value may be a secret).
PURE_PROBE_MODULES = frozenset({"cargo", "environ"})


def _code_files() -> list[str]:
    """Source files of every module this run imported outside the standard library:
    buildpolicy, its plugins and whatever they import (a team plugin's helpers, a
    third-party plugin installed in editable mode)."""
    stdlib = os.path.dirname(os.__file__) + os.sep
    files = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        # Distributions may live inside the stdlib directory (lib/python3.X/site-packages).
        in_stdlib = path.startswith(stdlib) and not any(
            part in ("site-packages", "dist-packages") for part in path[len(stdlib):].split(os.sep))
        if not in_stdlib:
            files.append(path)
    return sorted(set(files))


def build(result) -> dict[str, Any] | None:
    """What the output of the run ``result`` depends on (call only when its
    ``replay_blockers`` are empty).

    Files are stat'ed when they are read, code now. None is returned when any of
    them changed since ``result.started_ns``, the start of the run (or just before it):
    it may have changed again after it was read within the same timestamp tick,
    or, for code, after it was imported (the "racy git" problem). The next run
    records instead.
    """
    files: dict[str, str] = {}
    facts, probe_ctx = result.facts, result.facts.ctx
    for path, token in (*result.input_files, *result.context.replay_files):
        files.setdefault(path, token)
    for path in _code_files():  # plugins included: entry points and team plugins are imported modules
        files.setdefault(path, stat_token(path))
    tokens = list(files.items())
    # buildpolicy's own caches and state are replaced whole (a rename: a new inode
    # every time), never rewritten in place, so a fresh one is not racy.
    own = tuple(str(d) + os.sep for d in (result.paths.cache_dir, result.paths.state_dir))
    if any(racy(token, result.started_ns) for path, token in tokens if not path.startswith(own)):
        return None
    probes = facts.probe_table()
    deps = [
        (name, facts.peek(name), conditions)
        for name, conditions in facts.dependencies().items()
        if probes[name][0] not in PURE_PROBE_MODULES
    ]
    return {
        "files": tokens,
        "syspath": sys_path_state(),
        "probes": probes,
        "deps": deps,
        "expires": result.context.replay_expires,
        "context": {
            "cwd": str(probe_ctx.cwd),
            "cargo_argv": probe_ctx.cargo_argv,
            "profile_flag": probe_ctx.profile_flag,
            "default_profile": probe_ctx.default_profile,
            "project_root": None if probe_ctx.project_root is None else str(probe_ctx.project_root),
            "allowed_root": None if probe_ctx.allowed_root is None else str(probe_ctx.allowed_root),
            "cache_dir": str(probe_ctx.cache_dir),
            "root": str(probe_ctx.root),
            "platform": probe_ctx.platform,
        },
    }

"""Build the record a warm ``env`` replays (``buildpolicy.memo``) from a finished run."""

from __future__ import annotations

import os
import sys
from typing import Any

from buildpolicy.memo import racy, stat_token, sys_path_state


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


def blockers(request, prepared, facts, ctx) -> list[str]:
    """Why a warm ``env`` could not replay this run (empty: it can).

    Not replayable: runs with given facts or test plugins, plugin-declared facts,
    plugins that do not declare themselves replayable, plugins that opted out for
    this run (``ctx.not_replayable``), and plugins that failed to load or raised
    (whatever made them fail is not recorded).
    """
    reasons = []
    if request.fact_overrides or request.hermetic:
        reasons.append("facts are given (--facts or a policy test)")
    if request.extra_plugins or request.paths is not None:
        reasons.append("test plugins or directories are in use")
    reasons += prepared.host.not_replayable()
    reasons += ctx.replay_blockers
    if prepared.host.load_errors or prepared.host.warnings:
        reasons.append("a plugin failed to load or raised")
    blocker = facts.memo_blocker()
    if blocker:
        reasons.append(blocker)
    return reasons


def build(prepared, facts, probe_ctx, ctx, started_ns: int) -> dict[str, Any] | None:
    """What the output of this run depends on (call only when ``blockers`` found none).

    Files are stat'ed when they are read, code now. None is returned when any of
    them changed since ``started_ns``, the start of the run (or just before it):
    it may have changed again after it was read within the same timestamp tick,
    or, for code, after it was imported (the "racy git" problem). The next run
    records instead.
    """
    files: dict[str, str] = {}
    for path, token in (*prepared.input_files, *ctx.replay_files):
        files.setdefault(path, token)
    for path in _code_files():  # plugins included: entry points and team plugins are imported modules
        files.setdefault(path, stat_token(path))
    tokens = list(files.items())
    # buildpolicy's own caches and state are replaced whole (a rename: a new inode
    # every time), never rewritten in place, so a fresh one is not racy.
    own = tuple(str(d) + os.sep for d in (prepared.paths.cache_dir, prepared.paths.state_dir))
    if any(racy(token, started_ns) for path, token in tokens if not path.startswith(own)):
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
        "context": {
            "cwd": str(probe_ctx.cwd),
            "cargo_argv": probe_ctx.cargo_argv,
            "profile_flag": probe_ctx.profile_flag,
            "default_profile": probe_ctx.default_profile,
            "project_root": None if probe_ctx.project_root is None else str(probe_ctx.project_root),
            "cache_dir": str(probe_ctx.cache_dir),
            "root": str(probe_ctx.root),
            "platform": probe_ctx.platform,
        },
    }

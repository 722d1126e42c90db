"""Build the record a warm ``env`` replays (``buildpolicy.memo``) from a finished run."""

from __future__ import annotations

import sys
from typing import Any

from buildpolicy.memo import stat_token, sys_path_state


def _own_code() -> list[str]:
    """Source files of every buildpolicy module this run imported."""
    return sorted(
        module.__file__
        for name, module in list(sys.modules.items())
        if (name == "buildpolicy" or name.startswith(("buildpolicy.", "buildpolicy_")))
        and getattr(module, "__file__", None)
    )


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


def build(prepared, facts, probe_ctx, ctx) -> dict[str, Any]:
    """What the output of this run depends on (call only when ``blockers`` found none)."""
    files: dict[str, str | None] = {}
    for path, token in prepared.input_files:
        files.setdefault(path, token)
    for path in (*ctx.replay_files, *_own_code(), *prepared.host.code_files()):
        files.setdefault(str(path), None)
    types = {name: facts.registry.fact_type(name) for name in facts.probed()}
    return {
        "files": [(path, stat_token(path) if token is None else token) for path, token in files.items()],
        "syspath": sys_path_state(),
        "probes": {name: (module, function, types[name]) for name, (module, function) in facts.probe_table().items()},
        "deps": [(name, facts.peek(name), conditions) for name, conditions in facts.dependencies().items()],
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

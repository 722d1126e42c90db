"""The one-line summary ``exec`` (and ``env`` at a terminal, when it changes the
environment) prints on stderr, like direnv's ``export +A -B``: what was decided,
in the words a developer would use, so no decision is made silently::

    buildpolicy: selfdev · governor max=2 · mold · nightly -Zthreads=2 · sccache off (incremental)

Each part comes from a decision's machine-readable status (DESIGN §6); decisions
that change nothing (a default feature set, no remote, the system linker) are left out.
"""

from __future__ import annotations

SEPARATOR = " · "


def _jobs(decisions) -> str | None:
    governor = decisions.get("governor")
    if governor is not None and governor.status.startswith("on:"):
        return f"governor max={governor.status.rpartition('max=')[2]}"
    jobs = decisions.get("jobs")
    if jobs is None or jobs.value is None:
        return None
    return f"jobs={jobs.value}"


def _frontend(decision) -> str | None:
    # enabled:<toolchain>:threads=N: a toolchain switch the user should see.
    if not decision.status.startswith("enabled:"):
        return None
    toolchain, _, threads = decision.status[len("enabled:"):].rpartition(":threads=")
    channel = toolchain.split("-", 1)[0] if toolchain.startswith(("nightly", "beta", "stable")) else toolchain
    return f"{channel} -Zthreads={threads}"


def _sccache(decision) -> str | None:
    status = decision.status
    if status == "enabled":
        return "sccache"
    if status == "skipped-incremental":
        return "sccache off (incremental)"
    if status == "removed-inherited-incremental":
        return "sccache removed (incremental)"
    if status.startswith("external:"):
        return f"wrapper {status[len('external:'):]}"
    if status.startswith("disabled-by-policy:"):
        return f"sccache off ({status[len('disabled-by-policy:'):]})"
    return None


def _linker(decision) -> str | None:
    # The host's fast linker, then each foreign target's of a cross build.
    fast = ("mold", "lld")
    parts = [decision.status] if decision.status in fast else []
    parts += [f"{target.triple}: {target.status}" for target in decision.targets if target.status in fast]
    return ", ".join(parts) or None


def _simple(name: str):
    def part(decision) -> str | None:
        status = decision.status
        if name == "low_memory":
            return "low-memory" if status.startswith(("enabled", "forced")) else None
        if name == "remote":
            return status.replace("remote:", "remote ", 1) if status.startswith("remote:") else None
        if name == "features":
            return None if status == "default" else f"features {status}"
        if name == "tmpdir":
            return {"disk-scratch": "tmpdir on disk", "target-scratch": "tmpdir in target",
                    "explicit": "tmpdir set", "fallback-system-default": "tmpdir system (fallback)"}.get(status)
        return None

    return part


_PARTS = (("linker", _linker), ("frontend", _frontend), ("sccache", _sccache),
          ("low_memory", _simple("low_memory")), ("features", _simple("features")), ("remote", _simple("remote")),
          ("tmpdir", _simple("tmpdir")))


def summary_line(result) -> str:
    """``buildpolicy: <profile> · <decision> · …`` for ``result`` (an engine Result), with a newline."""
    decisions = result.decisions
    parts = [result.profile or "dev"]
    jobs = _jobs(decisions)
    if jobs:
        parts.append(jobs)
    for name, describe in _PARTS:
        decision = decisions.get(name)
        if decision is not None:
            text = describe(decision)
            if text:
                parts.append(text)
    return "buildpolicy: " + SEPARATOR.join(parts) + "\n"


def changes_environment(result, environ) -> bool:
    """Whether applying ``result`` changes ``environ`` (the env-state record aside)."""
    from buildpolicy.engine.envstate import STATE_VAR

    if any(environ.get(name) != value for name, value in result.set_env.items() if name != STATE_VAR):
        return True
    return any(name in environ for name in result.unset if name != STATE_VAR)

"""The ``sccache`` decision: use sccache as RUSTC_WRAPPER when it can help (DESIGN §6).

sccache cannot cache incremental compilations, so on incremental builds it
only costs time; it is skipped there unless the knob says ``on``. When
``cargo.incremental`` is unknown it is skipped too (``skipped-incremental-unknown``):
an unknown fact never enables what depends on its value.
"""

from __future__ import annotations

import os

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True

WRAPPER = "RUSTC_WRAPPER"
_TRUE = {"1", "true", "yes", "on"}


def _is_sccache(wrapper: str) -> bool:
    name = os.path.basename(wrapper.strip())
    return name in ("sccache", "sccache.exe")


def _check_backend(value):
    # Knob checks run while knobs are resolved: the parser is imported only when a value is given.
    from buildpolicy.run.cache.backends import check

    return check(value)


def _check_scheduler(value):
    from buildpolicy.run.cache.dist import check_scheduler

    return check_scheduler(value)


def _check_token(value):
    from buildpolicy.run.cache.dist import check_token

    return check_token(value)


@hookimpl
def buildpolicy_declare_knobs():
    """Declare the ``sccache`` knob (auto | on | off), ``sccache_backend`` and the sccache-dist knobs (DESIGN §12)."""
    return [KnobSpec(name="sccache", type="enum", default="auto", values=("auto", "on", "off"),
                     description="use sccache as RUSTC_WRAPPER: auto skips incremental builds"),
            KnobSpec(name="sccache_backend", type="string", default="local", check=_check_backend,
                     description="sccache's cache: local, redis://host:port[/db], rediss://…, redis+unix:///PATH, "
                                 "memcached://host:port, s3://bucket[/prefix]?endpoint=…&region=…, "
                                 "webdav+http(s)://…, gha; credentials as ?password=env:VAR or file:/PATH"),
            KnobSpec(name="sccache_dist_scheduler", type="string", default="", check=_check_scheduler,
                     description="sccache-dist scheduler URL (http(s)://host[:port], port 10600 by default); "
                                 "empty: every compilation runs here"),
            KnobSpec(name="sccache_dist_token", type="string", default="", check=_check_token, secret=True,
                     description="sccache-dist client token as a reference: env:VAR or file:/ABS/PATH")]


def _shared(ctx) -> bool:
    """Whether a shared backend or an sccache-dist scheduler is configured (``run/cache/`` decides then)."""
    try:
        backend, scheduler = ctx.knob("sccache_backend"), ctx.knob("sccache_dist_scheduler")
    except KeyError:
        return False
    return backend not in (None, "", "local") or bool(scheduler)


@hookimpl
def buildpolicy_decide(ctx):
    """Decide RUSTC_WRAPPER with the exact statuses of the design."""
    knob = ctx.knob("sccache")
    inherited = ctx.environ.get(WRAPPER)
    if ctx.environ.get("SCCACHE_DISABLE", "").strip().lower() in _TRUE:
        unset = (WRAPPER,) if inherited and _is_sccache(inherited) else ()
        reason = "SCCACHE_DISABLE is set" + (f"; removed the inherited {WRAPPER}={inherited}" if unset else "")
        return Decision("sccache", False, "disabled-by-env", reason, unset=unset)
    if knob == "off":
        return Decision("sccache", False, "disabled-by-knob", f"knob sccache = off ({ctx.knob_source('sccache')})")
    policy = ctx.policy_decision("sccache")
    if policy is not None and str(policy[0]).lower() in ("off", "false"):
        # Off means off for the caller's sccache too (the wrapper's low-memory mode
        # exported SCCACHE_DISABLE=1 for this): left inherited, it would wrap the very
        # incremental build the rule keeps. Another tool's wrapper is not ours to drop.
        unset = (WRAPPER,) if inherited and _is_sccache(inherited) else ()
        reason = f"rule {policy[1]} decides sccache = off" + (
            f"; removed the inherited {WRAPPER}={inherited}" if unset else "")
        return Decision("sccache", False, f"disabled-by-policy:{policy[1]}", reason, unset=unset)
    forced_by = "knob sccache = on" if knob == "on" else None
    if forced_by is None and knob == "auto" and policy is not None and str(policy[0]).lower() in ("on", "true"):
        knob, forced_by = "on", f"rule {policy[1]} decides sccache = on"
    # True, False or None (unknown: a Cargo.toml that does not parse, a broken
    # inherits chain). Unknown is not "non-incremental": sccache is only turned on
    # for a build known to be non-incremental, and an inherited wrapper is kept.
    incremental = ctx.fact("cargo.incremental")
    # cargo treats an empty RUSTC_WRAPPER as no wrapper: so does this decision,
    # and it replaces the empty value rather than let it win as "inherited".
    replace_empty = inherited == ""
    if inherited:
        if _is_sccache(inherited) and incremental is True and knob != "on":
            return Decision(
                "sccache", False, "removed-inherited-incremental",
                f"inherited {WRAPPER}={inherited} removed: sccache cannot cache incremental builds "
                f"(profile {ctx.fact('cargo.profile')})",
                unset=(WRAPPER,),
            )
        return Decision("sccache", inherited, f"external:{inherited}", f"inherited {WRAPPER}={inherited} is kept")
    if incremental is True and knob != "on":
        return Decision(
            "sccache", False, "skipped-incremental",
            f"profile {ctx.fact('cargo.profile')} builds incrementally; sccache cannot cache incremental builds",
        )
    if incremental is None and knob != "on":
        detail = ctx.facts.unknown_reason("cargo.incremental") if hasattr(ctx.facts, "unknown_reason") else None
        return Decision(
            "sccache", False, "skipped-incremental-unknown",
            f"whether profile {ctx.fact('cargo.profile')} builds incrementally is unknown"
            f"{f' ({detail})' if detail else ''}; sccache cannot cache incremental builds, so it is "
            "only used on a build known to be non-incremental (knob sccache = on forces it)",
        )
    path = ctx.fact("tool.sccache")
    problem = ctx.repository_binary_problem(path) if path else None
    if problem:
        # cargo would run it for every crate: a wrapper the repository chose is no wrapper.
        return Decision("sccache", False, "not-found", f"sccache is not used: {problem}")
    if path:
        why = forced_by or "non-incremental build"
        if replace_empty:
            why += f"; the caller's empty {WRAPPER} (no wrapper) is replaced"
        if _shared(ctx):
            from buildpolicy.run.cache.decide import decide

            return decide(ctx, path, why)
        return Decision("sccache", path, "enabled", f"{why}: {WRAPPER}={path}", set_env={WRAPPER: path},
                        force=replace_empty)
    return Decision("sccache", False, "not-found", "sccache is not on PATH")

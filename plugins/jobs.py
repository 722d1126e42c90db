"""The ``jobs`` decision: how many parallel rustc jobs fit in available memory (DESIGN §6)."""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True

MIB = 1 << 20
VARIABLE = "CARGO_BUILD_JOBS"


@hookimpl
def buildpolicy_declare_knobs():
    """Declare ``jobs`` (an override that warns and falls back when invalid) and ``mib_per_job``."""
    return [
        KnobSpec(
            name="jobs",
            type="int",
            minimum=1,
            on_invalid="warn",
            description="fixed number of cargo jobs; beats an inherited CARGO_BUILD_JOBS",
        ),
        KnobSpec(
            name="mib_per_job",
            type="int",
            default=1792,
            minimum=256,
            description="memory budget per rustc job in MiB for the adaptive job count",
        ),
    ]


def _positive_int(text: str) -> int | None:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        return None
    return value if value > 0 else None


def _declare_thresholds(ctx, by_memory: int, cpus: int | None, per_job: int) -> None:
    """The job count changes only when memory.available crosses a multiple of the
    per-job budget that matters: say which, so a warm `env` survives free memory
    drifting between prompts (buildpolicy.replay)."""
    if not hasattr(ctx, "depends_on"):
        return
    if cpus and by_memory >= cpus:  # limited by CPUs while memory allows them all
        ctx.depends_on("memory.available", ">=", cpus * per_job)
    elif by_memory <= 1:  # one job for anything below two budgets
        ctx.depends_on("memory.available", "<", 2 * per_job)
    else:
        ctx.depends_on("memory.available", ">=", by_memory * per_job)
        ctx.depends_on("memory.available", "<", (by_memory + 1) * per_job)


def _governed(ctx) -> Decision | None:
    """With the memory governor on (``exec`` of a compile-heavy cargo command), ``jobs``
    is its maximum: memory is governed live, compilation by compilation."""
    if getattr(ctx, "command", None) not in ("exec", "explain"):
        return None  # the prompt never imports the governor
    from buildpolicy.run.governor.decide import applicability, maximum

    if applicability(ctx) is not None:
        return None
    jobs, source = maximum(ctx)
    cpus = ctx.fact("cpu.count")
    status = f"governor-max:{jobs} (cpus={cpus if cpus else 'unknown'})"
    reason = (f"the memory governor's maximum ({source}): it grants jobserver tokens up to it as memory allows; "
              "cargo ignores -j and CARGO_BUILD_JOBS when it inherits a jobserver")
    return Decision("jobs", jobs, status, reason, set_env={VARIABLE: str(jobs)}, force=True)


@hookimpl
def buildpolicy_decide(ctx):
    """Decide ``CARGO_BUILD_JOBS``: the governor's maximum, knob override, inherited override,
    adaptive, or cargo's default."""
    governed = _governed(ctx)
    if governed is not None:
        return governed
    knob = ctx.knob("jobs")
    if knob is not None:
        return Decision(
            "jobs", knob, f"override:{knob}", f"knob jobs = {knob} ({ctx.knob_source('jobs')})",
            set_env={VARIABLE: str(knob)}, force=True,
        )
    inherited = ctx.environ.get(VARIABLE)
    replace_inherited = False
    # What was refused on the way to the adaptive count, for `explain jobs`.
    knobs = getattr(ctx, "knobs", None) or {}
    ignored = [f"ignored: {message}" for message in getattr(knobs.get("jobs"), "rejected", ())]
    if inherited is not None:
        value = _positive_int(inherited)
        if value is not None:
            return Decision("jobs", value, f"override:{value}", f"inherited {VARIABLE}={inherited}")
        # Replayed at every prompt (tests/test_replay.py holds it so) until the replay
        # learns to say a warning once per situation (issue 13 item 10).
        ctx.warn(f"ignoring inherited {VARIABLE}={inherited!r}: expected a positive integer; "
                 "using the adaptive job count")
        replace_inherited = True
        ignored.append(f"ignored: inherited {VARIABLE}={inherited!r} (not a positive integer)")

    available = ctx.fact("memory.available")
    if available is None:
        reason = "memory.available is unknown: cargo picks its default (one job per CPU)"
        # An invalid inherited value would make cargo fail: remove it.
        unset = (VARIABLE,) if replace_inherited else ()
        return Decision("jobs", None, "cargo-default", reason, unset=unset, details=ignored)
    budget = ctx.knob("mib_per_job")
    cpus = ctx.fact("cpu.count")
    by_memory = available // (budget * MIB)
    jobs = max(1, min(by_memory, cpus) if cpus else by_memory)
    _declare_thresholds(ctx, by_memory, cpus, budget * MIB)
    mem_mib = available // MIB
    status = f"adaptive:{jobs} (cpus={cpus if cpus else 'unknown'}, mem_avail={mem_mib}MiB, budget={budget}MiB/job)"
    limit = "memory" if not cpus or by_memory < cpus else "CPUs"
    reason = f"{mem_mib} MiB available / {budget} MiB per job = {by_memory}, clamped to 1..{cpus or '?'} CPUs: limited by {limit}"
    return Decision("jobs", jobs, status, reason, set_env={VARIABLE: str(jobs)}, force=replace_inherited,
                    details=ignored)

"""The ``frontend`` decision: rustc's parallel front-end on a nightly toolchain (DESIGN §6).

Knobs: ``frontend`` auto|on|off (default auto); ``frontend_threads`` (int ≥ 1,
default ``min(4, cpu.count)``); ``toolchain`` (the toolchain to use, default the
``rust.nightly`` fact: plain ``nightly-<host>`` first, else the newest dated one).
Plugin option ``[frontend] profiles = ["ci-fast", …]``: extra profiles auto
enables it for, besides the custom profiles whose ``inherits`` is ``dev``.

Why only those profiles: ``-Zthreads`` changes RUSTFLAGS and the toolchain, and
cargo rebuilds everything when they change. ``dev`` and ``test`` share
``target/debug`` with rust-analyzer and editors, which build with the default
toolchain, so switching them would make every build a full rebuild. A custom
profile inheriting from ``dev`` has its own ``target/<profile>``.

Statuses (checked in this order):

- ``disabled-by-knob`` — knob ``frontend = off``.
- ``skipped-explicit-toolchain:+<tc>`` — the cargo argv has ``+<tc>``; rustup obeys it
  over ``RUSTUP_TOOLCHAIN``, so ``-Zthreads`` might reach a stable rustc.
- ``skipped-profile-shared-target:<p>`` — ``dev``/``test`` under ``auto``.
- ``skipped-profile:<p>`` — any other profile not eligible under ``auto``.
- ``skipped-no-rustup`` — no rustup (no toolchain directory, or no ``rustup`` on PATH:
  without its proxies ``RUSTUP_TOOLCHAIN`` does nothing).
- ``skipped-inherited-toolchain:<tc>`` — the caller's ``RUSTUP_TOOLCHAIN`` names a
  toolchain that is not a nightly (a nightly one is used as it is).
- ``skipped-pinned-toolchain:<tc>`` — under ``auto`` without a ``toolchain`` knob, the
  project pins a non-nightly toolchain (``rust-toolchain[.toml]`` or ``rustup override``);
  a pinned nightly is used as it is. ``on`` or a ``toolchain`` knob overrides the pin.
- ``skipped-no-nightly`` — no nightly toolchain is installed.
- ``skipped-nightly-unavailable:<tc>`` — ``<tc>`` is not installed, does not run, or is
  not a nightly/dev rustc (``-Z`` flags need one).
- ``enabled:<tc>:threads=N`` — ``RUSTUP_TOOLCHAIN=<tc>`` and the rustflags fragment
  ``-Zthreads=N``.

No slow subprocess on the hot path: toolchains are read from rustup's toolchain
directory (the ``rust.toolchains``/``rust.nightly`` facts), and whether the chosen one
runs is checked once per rustc binary identity and cached (``toolchain_runs``).
Toolchains given through ``--facts`` or a policy test case describe another
machine and are not run.
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True

SHARED_TARGET_PROFILES = ("dev", "test")
MAX_DEFAULT_THREADS = 4


@hookimpl
def buildpolicy_declare_knobs():
    """Declare ``frontend`` (auto|on|off), ``frontend_threads`` and ``toolchain``."""
    return [
        KnobSpec(
            name="frontend",
            type="enum",
            default="auto",
            values=("auto", "on", "off"),
            description="rustc's parallel front-end (-Zthreads on a nightly): auto enables it for custom dev-derived profiles",
        ),
        KnobSpec(
            name="frontend_threads",
            type="int",
            minimum=1,
            description="threads of the parallel front-end (default min(4, cpu.count))",
        ),
        KnobSpec(
            name="toolchain",
            type="string",
            description="the nightly toolchain for the parallel front-end (default: the rust.nightly fact)",
        ),
    ]


def _listed_profiles(ctx) -> tuple[str, ...]:
    value = ctx.option("frontend", "profiles", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        ctx.warn(f"[frontend] profiles must be a list of profile names, not {value!r}; ignored")
        return ()
    return tuple(value)


def _given(ctx, fact: str) -> bool:
    """The fact comes from ``--facts``/a test case (another machine), not from probing this one."""
    try:
        return ctx.facts.source(fact) in ("override", "hermetic")
    except (AttributeError, KeyError):
        return False


def _is_nightly_name(name: str) -> bool:
    return name == "nightly" or name.startswith("nightly-")


def _profile_skip(ctx, knob: str) -> tuple[Decision | None, str]:
    """``(skip decision or None, why the profile is eligible)``."""
    profile = ctx.fact("cargo.profile")
    if knob == "on":
        return None, f"knob frontend = on ({ctx.knob_source('frontend')})"
    if profile in SHARED_TARGET_PROFILES:
        return Decision(
            "frontend", None, f"skipped-profile-shared-target:{profile}",
            f"profile {profile} shares target/debug with rust-analyzer: switching its toolchain and RUSTFLAGS "
            "would rebuild everything (knob frontend = on forces it)",
        ), ""
    if profile in _listed_profiles(ctx):
        return None, f"profile {profile} is listed in [frontend] profiles"
    inherits = ctx.fact("cargo.profile_inherits")
    if inherits == "dev":
        return None, f"profile {profile} inherits from dev and has its own target directory"
    if inherits is None:
        detail = ctx.facts.unknown_reason("cargo.profile_inherits") if hasattr(ctx.facts, "unknown_reason") else None
        why = f"its inherits is unknown ({detail})" if detail else "its inherits is unknown"
    else:
        why = f"it inherits from {inherits}, not dev"
    return Decision(
        "frontend", None, f"skipped-profile:{profile}",
        f"profile {profile} is not a custom dev profile ({why}) nor listed in [frontend] profiles",
    ), ""


def _choose_toolchain(ctx, knob: str, probe_ctx, given: bool) -> tuple[Decision | None, str | None, str, bool]:
    """``(skip decision, toolchain, where it came from, whether to set RUSTUP_TOOLCHAIN)``."""
    inherited = ctx.environ.get("RUSTUP_TOOLCHAIN")
    if inherited:
        if not _is_nightly_name(inherited):
            return Decision(
                "frontend", None, f"skipped-inherited-toolchain:{inherited}",
                f"the caller's RUSTUP_TOOLCHAIN={inherited} is kept and is not a nightly (-Z flags need one)",
            ), None, "", False
        return None, inherited, "the caller's RUSTUP_TOOLCHAIN", False
    chosen = ctx.knob("toolchain")
    if chosen:
        return None, chosen, f"knob toolchain ({ctx.knob_source('toolchain')})", True
    if knob == "auto":
        from buildpolicy.facts.rust import repository_choice_problem, rustup_home, toolchain_selection

        looked_at: list = []
        home = None if given else rustup_home(probe_ctx)
        how, pinned, detail = toolchain_selection(probe_ctx, home, looked_at)
        for path in looked_at:  # rust-toolchain files and rustup's settings (buildpolicy.replay)
            ctx.depends_on_file(path)
        if how in ("file", "override") and pinned:
            where = detail.splitlines()[0] if detail else "rustup override"
            if not _is_nightly_name(pinned):
                return Decision(
                    "frontend", None, f"skipped-pinned-toolchain:{pinned}",
                    f"the project pins toolchain {pinned} ({where}); set knob toolchain or frontend = on to override",
                ), None, "", False
            problem = None if given else repository_choice_problem(probe_ctx, home, how, pinned, detail,
                                                                     ctx.fact("host.triple"))
            if problem:  # a linked toolchain the repository's file chose is not run
                if home is not None:  # holds until a toolchain is installed or linked
                    ctx.depends_on_file(home / "toolchains")
                return Decision("frontend", None, f"skipped-nightly-unavailable:{pinned}", problem), None, "", False
            return None, pinned, f"the project's pin ({where})", True
    nightly = ctx.fact("rust.nightly")
    if not nightly:
        return Decision("frontend", None, "skipped-no-nightly", "no nightly toolchain is installed (rust.nightly is null)"), \
            None, "", False
    return None, nightly, "rust.nightly", True


def _check_runs(ctx, toolchain: str, probe_ctx, given: bool) -> tuple[bool, str]:
    if given:
        installed = ctx.fact("rust.toolchains") or []
        host = ctx.fact("host.triple")
        if toolchain in installed or (host and f"{toolchain}-{host}" in installed) or toolchain == ctx.fact("rust.nightly"):
            return True, "given facts (another machine): not run"
        return False, f"{toolchain} is not among the given rust.toolchains"
    from buildpolicy.facts.rust import toolchain_runs

    looked_at: list = []
    ok, message = toolchain_runs(probe_ctx, toolchain, looked_at=looked_at)
    if ok:  # holds while the toolchain's rustc and the cached answer stay (buildpolicy.replay)
        for path in looked_at:
            ctx.depends_on_file(path)
    else:  # a failure (a timeout is not even cached) is asked again next time
        ctx.not_replayable(f"toolchain {toolchain} did not run: {message}")
    if ok and "-nightly" not in message and "-dev" not in message:
        return False, f"{message}: not a nightly or dev rustc, which -Z flags need"
    return ok, message


def _threads(ctx) -> tuple[int, str]:
    knob = ctx.knob("frontend_threads")
    if knob is not None:
        return knob, f"knob frontend_threads = {knob} ({ctx.knob_source('frontend_threads')})"
    cpus = ctx.fact("cpu.count")
    if not cpus:
        return MAX_DEFAULT_THREADS, f"cpu.count is unknown: {MAX_DEFAULT_THREADS} threads"
    threads = max(1, min(MAX_DEFAULT_THREADS, cpus))
    return threads, f"min({MAX_DEFAULT_THREADS}, cpu.count={cpus}) = {threads} threads"


@hookimpl
def buildpolicy_decide(ctx):
    """Decide the parallel front-end: the exact skip statuses, or ``enabled:<tc>:threads=N``."""
    knob = ctx.knob("frontend")
    if knob == "off":
        return Decision("frontend", None, "disabled-by-knob", f"knob frontend = off ({ctx.knob_source('frontend')})")
    explicit = ctx.fact("cargo.toolchain_override")
    if explicit:
        return Decision(
            "frontend", None, f"skipped-explicit-toolchain:+{explicit}",
            f"the cargo command line selects +{explicit}, which rustup obeys over RUSTUP_TOOLCHAIN",
        )
    skip, eligible = _profile_skip(ctx, knob)
    if skip is not None:
        return skip
    if ctx.fact("rust.toolchains") is None or not ctx.fact("tool.rustup"):
        missing = "no rustup toolchain directory" if ctx.fact("rust.toolchains") is None else "rustup is not on PATH"
        return Decision("frontend", None, "skipped-no-rustup", f"{missing}: a nightly cannot be selected with RUSTUP_TOOLCHAIN")
    probe_ctx = ctx.facts.ctx
    given = _given(ctx, "rust.toolchains")
    skip, toolchain, origin, set_toolchain = _choose_toolchain(ctx, knob, probe_ctx, given)
    if skip is not None:
        return skip
    ok, message = _check_runs(ctx, toolchain, probe_ctx, given)
    if not ok:
        return Decision("frontend", None, f"skipped-nightly-unavailable:{toolchain}",
                        f"toolchain {toolchain} (from {origin}) cannot be used: {message}")
    threads, threads_why = _threads(ctx)
    return Decision(
        "frontend", {"toolchain": toolchain, "threads": threads}, f"enabled:{toolchain}:threads={threads}",
        (f"{eligible}; the build switches to toolchain {toolchain} (RUSTUP_TOOLCHAIN, from {origin}: {message})"
         if set_toolchain else f"{eligible}; toolchain {toolchain} from {origin} ({message})") + f"; {threads_why}",
        set_env={"RUSTUP_TOOLCHAIN": toolchain} if set_toolchain else {},
        rustflags=(f"-Zthreads={threads}",),
    )

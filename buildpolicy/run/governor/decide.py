"""The ``governor`` decision (DESIGN §11), shared by the governor and jobs plugins.

Statuses: ``on:jobserver:max=N``, ``disabled-by-knob``, ``not-applicable:<why>``,
``memory-unknown``. ``auto`` and ``on`` govern the same builds: compile-heavy
cargo commands under ``exec`` (``explain`` with such a command line shows
what ``exec`` would do); ``auto`` exists so a team can say ``off`` and a
user ``on`` without either being the default.

The maximum is cargo's own ``-j N`` when the command line has one, else the
``jobs`` knob, else an inherited ``CARGO_BUILD_JOBS``, else the CPU count:
with a jobserver inherited, cargo ignores ``-j``, so the governor applies it.
"""

from __future__ import annotations

import os

from buildpolicy.run.governor.wrapper import SOCKET_VAR

GOVERNED_COMMANDS = frozenset({"build", "check", "test", "bench", "run", "doc", "clippy", "install"})


# cargo's short options that take a value; in a cluster (``-qj2``) the rest is the value.
VALUE_SHORT_OPTIONS = frozenset("jpFZC")


def cargo_config_arg(argv, key: str) -> str | None:
    """The last ``--config KEY=VALUE`` (or ``--config=KEY=VALUE``) of a cargo argv for ``key``,
    before ``--``: its value unquoted, or None (a ``--config FILE`` is not read)."""
    args = list(argv or ())
    if "--" in args:
        args = args[: args.index("--")]
    found = None
    for index, arg in enumerate(args):
        if arg == "--config" and index + 1 < len(args):
            setting = args[index + 1]
        elif arg.startswith("--config="):
            setting = arg[9:]
        else:
            continue
        name, sep, text = setting.partition("=")
        if sep and name.strip() == key:
            found = text.strip().strip("'\"")
    return found


def cargo_jobs_arg(argv, cpus: int | None) -> int | None:
    """The ``-j N`` of a cargo argv (before ``--``), or None; negative counts from the CPUs.

    Every spelling cargo accepts: ``-j N``, ``-jN``, ``-j=N``, ``--jobs N``, ``--jobs=N``
    and ``-j`` at the end of a cluster of short flags (``-qj2``, ``-vj 2``, ``-qj=2``);
    without one, ``--config build.jobs=N`` (which beats every other setting but ``-j``).
    """
    args = list(argv or ())
    if "--" in args:
        args = args[: args.index("--")]
    value = None
    for index, arg in enumerate(args):
        following = args[index + 1] if index + 1 < len(args) else None
        if arg == "--config" or arg.startswith("--config="):
            continue
        if arg == "--jobs":
            value = following
        elif arg.startswith("--jobs="):
            value = arg[7:]
        elif arg.startswith("-") and not arg.startswith("--"):
            for position, letter in enumerate(arg[1:], start=2):
                if letter in VALUE_SHORT_OPTIONS:  # it takes the rest of the cluster, or the next word
                    if letter == "j":
                        rest = arg[position:]
                        value = (rest[1:] if rest.startswith("=") else rest) or following
                    break
    if value is None:
        value = cargo_config_arg(args, "build.jobs")
    try:
        jobs = int(value) if value is not None else None
    except ValueError:
        return None  # "default", or cargo's own error to give
    if jobs is not None and jobs < 0:
        jobs = max(1, (cpus or 1) + jobs)
    return jobs or None


def applicability(ctx) -> tuple[str, str] | None:
    """``(status, reason)`` when the governor does not run, else None."""
    if ctx.knob("governor") == "off":
        return "disabled-by-knob", f"knob governor = off ({ctx.knob_source('governor')})"
    if ctx.command not in ("exec", "explain"):
        return f"not-applicable:{ctx.command}", f"only `exec` runs a build to govern; `{ctx.command}` runs nothing"
    if ctx.cargo_argv is None:
        return "not-applicable:not-cargo", "the command is not cargo"
    command = ctx.fact("cargo.command")
    if command not in GOVERNED_COMMANDS and not _has_profile(ctx.cargo_argv):
        return (f"not-applicable:cargo-{command or 'none'}",
                f"cargo {command or '(no command)'} compiles little or nothing: no memory to govern")
    if ctx.environ.get(SOCKET_VAR):
        return "not-applicable:nested", "an outer `buildpolicy exec` governs this build already (its jobserver is inherited)"
    if ctx.fact("memory.available") is None:
        return "memory-unknown", "available memory cannot be read here: the static job count applies"
    return None


def _has_profile(argv) -> bool:
    before = list(argv)[: list(argv).index("--")] if "--" in argv else list(argv)
    return any(arg == "--profile" or arg.startswith("--profile=") for arg in before)


def maximum(ctx) -> tuple[int, str]:
    """The governor's most parallel jobs, and where that number comes from."""
    cpus = ctx.fact("cpu.count")
    explicit = cargo_jobs_arg(ctx.cargo_argv, cpus)
    if explicit is not None:
        return explicit, f"cargo's own -j {explicit}"
    knob = ctx.knob("jobs")
    if knob is not None:
        return knob, f"knob jobs = {knob} ({ctx.knob_source('jobs')})"
    inherited = ctx.environ.get("CARGO_BUILD_JOBS", "").strip()
    if inherited.isdigit() and int(inherited) > 0:
        return int(inherited), f"inherited CARGO_BUILD_JOBS={inherited}"
    return (cpus or os.cpu_count() or 1), f"{cpus} CPUs" if cpus else "the CPU count"


def decide(ctx):
    """The ``governor`` decision for ``ctx``."""
    from buildpolicy.model import Decision

    off = applicability(ctx)
    if off is not None:
        status, reason = off
        return Decision("governor", None, status, reason, details=learned_table(ctx))
    jobs, source = maximum(ctx)
    prior = ctx.knob("mib_per_job")
    reason = (f"exec serves cargo a jobserver and admits each rustc when the memory its crate is known to need fits "
              f"(crates never seen: mib_per_job = {prior} MiB); at most {jobs} jobs ({source})")
    return Decision("governor", jobs, f"on:jobserver:max={jobs}", reason, details=learned_table(ctx))


def learned_table(ctx) -> tuple[str, ...]:
    """The per-crate estimates learned for this workspace and profile, as text lines."""
    from buildpolicy.run.governor import peaks
    from buildpolicy.run.workspace import workspace_root

    if ctx.cargo_argv is None or ctx.command not in ("exec", "explain"):
        return ()  # never at the prompt: `env` pays nothing for the governor
    root = workspace_root(ctx.facts.ctx.cwd) if hasattr(ctx.facts, "ctx") else None
    profile = ctx.fact("cargo.profile")
    if root is None or not profile:
        return ()
    table = peaks.load(ctx.state_dir, str(root))
    lines = []
    for key in (profile, peaks.profile_key(profile, True)):
        crates = table.get(key, {})
        if not crates:
            continue
        lines.append(f"learned peaks, {key} ({len(crates)} crates, {str(root)}):")
        rows = sorted(crates.items(), key=lambda item: (-max(item[1]["peaks_mib"]), item[0]))
        width = max(len(name) for name, _ in rows)
        for name, entry in rows:
            estimate = peaks.estimate_bytes(entry) >> 20
            lines.append(f"  {name.ljust(width)}  estimate {estimate:>6} MiB  last peak {entry['peaks_mib'][-1]:>6} MiB"
                         f"  from {entry['builds']} build{'s' if entry['builds'] != 1 else ''}")
    return tuple(lines)

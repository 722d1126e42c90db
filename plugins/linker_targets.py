"""The ``linker`` decision for the foreign targets of a cross build (DESIGN §6, issue 14).

cargo builds for the triples of ``--target`` (several build for each), else
``CARGO_BUILD_TARGET``, else ``[build] target`` (the fact ``cargo.targets``). The
host's linker variables do nothing for those: each foreign target gets its own
decision, reported under the decision's ``targets`` (``explain --format json``)
and in ``explain``'s table, with the host's statuses:

- ``mold`` / ``lld`` — a driver linked a test program for that target with the fast
  linker: ``clang --target=<triple>`` (clang finds the target's sysroot and GCC
  libraries, e.g. Debian's ``gcc-aarch64-linux-gnu``), else the target's cross gcc
  (``aarch64-linux-gnu-gcc``). ``CARGO_TARGET_<TRIPLE>_LINKER`` is that driver and
  ``CARGO_TARGET_<TRIPLE>_RUSTFLAGS`` gets ``-C link-arg=--target=<triple>`` (clang
  only: rustc does not tell clang the target) and ``-C link-arg=-fuse-ld=<linker>``.
  The program cannot run here: its ELF header must name the target's machine.
- ``system`` — nothing is set for the target: cargo links it with ``cc`` or the
  ``[target.<triple>] linker`` of the cargo configuration (the reason names a cross
  gcc when one is found).
- ``inherited:<linker>`` — the caller's ``CARGO_TARGET_<TRIPLE>_LINKER`` or rustflags.
- ``skipped-os`` — the host is not Linux, or the target is not a Linux target (mold
  and lld are configured for Linux ELF targets only).
- ``skipped-profile:<p>`` — as for the host.

The smoke test is cached like the host's, keyed by the driver, the linker and the target.
"""

from __future__ import annotations

from buildpolicy.model import TargetDecision

# ELF e_machine of each architecture (the first part of the triple); others: any ELF.
ELF_MACHINES = {"x86_64": 62, "i686": 3, "i586": 3, "i386": 3, "aarch64": 183, "arm": 40, "armv7": 40,
                "thumbv7neon": 40, "riscv64gc": 243, "riscv64": 243, "riscv32gc": 243, "powerpc64": 21,
                "powerpc64le": 21, "powerpc": 20, "s390x": 22, "loongarch64": 258, "mips": 8, "mipsel": 8,
                "mips64": 8, "mips64el": 8, "sparc64": 43}


def foreign_targets(ctx, host: str | None) -> list[str]:
    """The build's target triples other than the host, in cargo's order."""
    targets = ctx.fact("cargo.targets") or []
    return [triple for triple in targets if triple != host]


def clang_triple(triple: str) -> str:
    """The triple clang understands for a Rust ``triple`` (``riscv64gc-…`` → ``riscv64-…``)."""
    arch, _, rest = triple.partition("-")
    return f"{arch.removesuffix('gc')}-{rest}" if arch.startswith("riscv") else triple


def gnu_triple(triple: str) -> str:
    """The GNU toolchain prefix Debian names a cross gcc by: ``aarch64-unknown-linux-gnu`` →
    ``aarch64-linux-gnu``, ``armv7-unknown-linux-gnueabihf`` → ``arm-linux-gnueabihf``."""
    parts = triple.split("-")
    arch = parts[0]
    if arch.startswith(("armv", "thumbv")):
        arch = "arm"
    elif arch.startswith("riscv"):
        arch = arch.removesuffix("gc")
    rest = [part for part in parts[1:] if part not in ("unknown", "pc")]
    return "-".join([arch, *rest])


def decide_target(ctx, host_module, triple: str) -> tuple[TargetDecision, dict[str, str]]:
    """The linker for foreign target ``triple``, and the variables it sets."""
    if ctx.fact("os") != "linux":
        return TargetDecision(triple, None, "skipped-os", "fast linkers are only configured on a Linux host"), {}
    inherited = host_module._inherited_linker(ctx, triple)
    if inherited:
        linker, where = inherited
        return TargetDecision(triple, linker, f"inherited:{linker}",
                              f"the caller's {where} already chooses the linker for {triple} ({linker}); kept"), {}
    knob, source = ctx.knob("linker"), ctx.knob_source("linker")
    if knob == "system":
        return TargetDecision(triple, "system", "system", f"knob linker = system ({source}); {_system(ctx, triple)}"), {}
    profile = ctx.fact("cargo.profile")
    if knob == "auto" and profile in host_module._skip_profiles(ctx):
        return TargetDecision(triple, None, f"skipped-profile:{profile}",
                              f"profile {profile} is in [linker] skip_profiles: the default linker is kept"), {}
    if "-linux-" not in triple:
        return TargetDecision(triple, None, "skipped-os",
                              f"{triple} is not a Linux target: mold and lld are configured for Linux ELF targets only"), {}
    notes = []
    for name, tool, lookup in host_module.FAST_LINKERS:
        if knob not in ("auto", name):
            continue
        for driver, path, args in _drivers(ctx, triple):
            cross = (args, triple, ELF_MACHINES.get(triple.split("-")[0], 0))
            chosen, note = host_module._try_fast(ctx, name, tool, lookup, path, driver=driver, cross=cross)
            if chosen is None:
                notes.append(f"{note} (through {driver})")
                continue
            driver_path, fuse = chosen
            if driver == "clang":
                driver_path, portable = host_module._portable_clang(ctx, driver_path)
            else:
                portable = ""
            why = f"knob linker = {name} ({source})" if knob != "auto" else "auto picks the fastest working linker"
            skipped = f" (skipped: {'; '.join(notes)})" if notes else ""
            flags = tuple(flag for arg in (*args, f"-fuse-ld={fuse}") for flag in ("-C", f"link-arg={arg}"))
            env = {f"CARGO_TARGET_{host_module.triple_env(triple)}_LINKER": driver_path}
            return TargetDecision(
                triple, name, name,
                f"{why}: {note}; cargo links {triple} through {driver_path} {' '.join([*args, f'-fuse-ld={fuse}'])}"
                f"{portable}{skipped}{host_module._overridden_config(ctx, triple)}",
                rustflags=flags,
            ), env
    if knob != "auto":
        ctx.warn(f"knob linker = {knob} ({source}) cannot be used for {triple}: {'; '.join(notes)}; using the system linker")
    return TargetDecision(triple, "system", "system", f"{'; '.join(notes)}; {_system(ctx, triple)}"), {}


def _drivers(ctx, triple: str) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """``(name, path, args)`` of the drivers that may link for ``triple``: clang told the
    target, then the target's cross gcc (only when found: its absence says nothing new)."""
    drivers = [("clang", ctx.fact("tool.clang"), (f"--target={clang_triple(triple)}",))]
    gcc = f"{gnu_triple(triple)}-gcc"
    found = ctx.fact(f"tool.{gcc}")
    if found:
        drivers.append((gcc, found, ()))
    return drivers


def _system(ctx, triple: str) -> str:
    """What the system default means for a foreign target."""
    gcc = f"{gnu_triple(triple)}-gcc"
    found = ctx.fact(f"tool.{gcc}")
    hint = (f"; {gcc} is at {found}: `[target.{triple}] linker = \"{gcc}\"` in .cargo/config.toml links with it"
            if found else "")
    return f"cargo links {triple} with cc unless the cargo configuration sets [target.{triple}] linker{hint}"


def with_targets(ctx, decision, host_module, host: str | None):
    """``decision`` (the host's) with the decisions of the build's foreign targets added:
    their statuses under ``targets`` and in ``details``, their variables in ``set_env``."""
    from buildpolicy.model import evolve

    foreign = foreign_targets(ctx, host)
    if not foreign:
        return decision
    targets, env = [], dict(decision.set_env)
    for triple in foreign:
        target, variables = decide_target(ctx, host_module, triple)
        targets.append(target)
        env.update(variables)
    details = [f"host {host or '(unknown)'}: {decision.status}",
               *(f"target {t.triple}: {t.status} — {t.reason}" for t in targets)]
    return evolve(decision, set_env=env, targets=targets, details=(*decision.details, *details))

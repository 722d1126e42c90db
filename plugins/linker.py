"""The ``linker`` decision: link with mold or lld through clang when they work (DESIGN §6).

Knob ``linker``: ``auto`` (default) | ``mold`` | ``lld`` | ``system``.
Plugin option ``[linker] skip_profiles`` (default ``["release-lto"]``): cargo
profiles that keep the system linker under ``auto``.

Statuses (stable, machine-readable):

- ``mold`` / ``lld`` — ``CARGO_TARGET_<TRIPLE>_LINKER`` is the absolute path of the
  clang that passed the smoke test (a bare ``clang`` would be looked up on whatever
  PATH the build runs with, possibly finding a clang that was never tested), and
  the rustflags fragment is ``-C link-arg=-fuse-ld=mold`` (or ``=lld``). The bare
  name is used when what clang finds on its own for it (``ld.mold``/``ld.lld``
  next to the real clang binary, else on PATH) is the smoke-tested binary;
  otherwise the fragment names the linker's absolute path, which clang accepts
  too (``-fuse-ld=/opt/mold/bin/mold``).
- ``system`` — no linker is set: rustc's default applies. The reason says what
  that is for the rustc in use (since Rust 1.90 rustc links
  x86_64-unknown-linux-gnu with its bundled rust-lld; before, and on other
  targets, the C compiler's default linker, usually GNU ld), and why no fast
  linker was picked (not found, smoke test failed, knob).
- ``skipped-os`` — not Linux (or the OS is unknown).
- ``skipped-profile:<p>`` — profile ``<p>`` is in ``skip_profiles`` and the knob
  is ``auto`` (an explicit ``mold``/``lld`` knob beats the option).
- ``inherited:<linker>`` — the caller already chose a linker: an inherited
  ``CARGO_TARGET_<TRIPLE>_LINKER`` (``<linker>`` is its value), or ``-fuse-ld=`` /
  ``-C linker=`` in an inherited ``RUSTFLAGS``/``CARGO_ENCODED_RUSTFLAGS``/``CARGO_BUILD_RUSTFLAGS``/``CARGO_TARGET_<TRIPLE>_RUSTFLAGS``
  (``<linker>`` is what it names). Nothing is changed.

The smoke test compiles and links a tiny C program with
``clang -fuse-ld=<linker>`` in a scratch directory and runs it, each step with a
timeout. Its result is cached (``<cache dir>/probes/linker-smoke.json``) keyed by
the identity (path, size, mtime_ns) of clang and of the linker, so a warm run
starts no process; a failure is retried after a day (the machine may have been
fixed) and a timeout is never cached. Linkers given through ``--facts`` or a
policy test case describe another machine: they are taken as working, not run.

These statuses are the host's. A cross build's foreign targets (``cargo.targets``) are
decided by ``buildpolicy_plugins.linker_targets``, each with its own status under the
decision's ``targets``.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from pathlib import Path

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True

DEFAULT_SKIP_PROFILES = ("release-lto",)
# Fast linkers in order of preference: (knob value, tool fact, name clang looks up).
FAST_LINKERS = (("mold", "mold", "ld.mold"), ("lld", "ld.lld", "ld.lld"))
SMOKE_CACHE = "linker-smoke.json"
FAILURE_TTL = 24 * 3600  # seconds before a failed smoke test is tried again
LINK_TIMEOUT = 15.0  # compile + link one tiny C file; generous for a cold disk cache
RUN_TIMEOUT = 5.0
SMOKE_OUTPUT = "buildpolicy linker smoke test ok"
SMOKE_SOURCE = f'#include <stdio.h>\nint main(void) {{ puts("{SMOKE_OUTPUT}"); return 0; }}\n'
# rust-lld became the default linker of this target in Rust 1.90.
RUST_LLD_TARGET = "x86_64-unknown-linux-gnu"
RUST_LLD_SINCE = (1, 90)

_FUSE_LD_RE = re.compile(r"-fuse-ld=(\S+)")
_LINKER_FLAG_RE = re.compile(r"(?:^|\s)-C\s*linker=(\S+)")


def triple_env(triple: str) -> str:
    """``x86_64-unknown-linux-gnu`` → ``X86_64_UNKNOWN_LINUX_GNU``, as cargo spells it in variables."""
    return triple.upper().replace("-", "_").replace(".", "_")


@hookimpl
def buildpolicy_declare_knobs():
    """Declare the ``linker`` knob: auto | mold | lld | system."""
    return [
        KnobSpec(
            name="linker",
            type="enum",
            default="auto",
            values=("auto", "mold", "lld", "system"),
            description="linker for Linux builds: auto tries mold, then lld (each through clang), then the system default",
        )
    ]


def _skip_profiles(ctx) -> tuple[str, ...]:
    value = ctx.option("linker", "skip_profiles", list(DEFAULT_SKIP_PROFILES))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        ctx.warn(f"[linker] skip_profiles must be a list of profile names, not {value!r}; using {list(DEFAULT_SKIP_PROFILES)}")
        return DEFAULT_SKIP_PROFILES
    return tuple(value)


def _inherited_linker(ctx, triple: str | None) -> tuple[str, str] | None:
    """``(linker, where)`` when the caller's environment already chooses a linker."""
    if triple:
        variable = f"CARGO_TARGET_{triple_env(triple)}_LINKER"
        if ctx.environ.get(variable):
            return ctx.environ[variable], variable
    names = ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"]
    names += [f"CARGO_TARGET_{triple_env(triple)}_RUSTFLAGS"] if triple else []
    for name in names:
        flags = ctx.environ.get(name, "").replace("\x1f", " ")  # CARGO_ENCODED_RUSTFLAGS separator
        # The last -fuse-ld wins in the C compiler, and -C linker= replaces cc itself.
        fuse = _FUSE_LD_RE.findall(flags)
        if fuse:
            return fuse[-1], name
        linker = _LINKER_FLAG_RE.findall(flags)
        if linker:
            return linker[-1], name
    return None


def _overridden_config(ctx, triple: str) -> str:
    """For ``explain`` and ``doctor``: a note naming a ``[target.<triple>] linker`` of a cargo
    configuration file that the variable this decision sets overrides (cargo reads the
    variable first), or "". Not on ``env``/``exec``: reading the files costs the prompt."""
    if ctx.command not in ("explain", "doctor"):
        return ""
    from buildpolicy.facts.cargo_config import cargo_config_files, read_cargo_config

    cwd = getattr(getattr(ctx.facts, "ctx", None), "cwd", None)
    if cwd is None:
        return ""
    values, _notes = read_cargo_config(cargo_config_files(Path(cwd), ctx.environ))
    key = f"target.{triple}.linker"
    for item in values:
        if item.key == key and isinstance(item.value, str) and item.value:
            return (f"; this overrides [target.{triple}] linker = {item.value!r} in {item.where} "
                    f"(CARGO_TARGET_{triple_env(triple)}_LINKER beats the file; `buildpolicy set linker system` keeps it)")
    return ""


def _version_tuple(version: str | None) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def system_meaning(ctx, triple: str | None) -> str:
    """What rustc's default linker is for the rustc in use, from ``rust.version`` and the triple."""
    if triple != RUST_LLD_TARGET:
        return f"rustc links {triple or 'this target'} through the C compiler (cc) with its default linker, usually GNU ld"
    version = ctx.fact("rust.version")
    parsed = _version_tuple(version)
    since = ".".join(map(str, RUST_LLD_SINCE))
    if parsed is None:
        return (f"rust.version is unknown: rustc {since}+ links {triple} with its bundled rust-lld by default, "
                "older rustc through cc with GNU ld")
    if parsed >= RUST_LLD_SINCE:
        return (f"rustc {version} already links {triple} with its bundled rust-lld by default "
                f"(the default since Rust {since}), so `system` means rust-lld here, not GNU ld")
    return f"rustc {version} links {triple} through cc with the system linker (usually GNU ld); rust-lld is the default only since Rust {since}"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _clang_finds(ctx, clang: str, lookup: str, linker: str) -> bool:
    """Whether ``clang -fuse-ld=<name>`` would run ``linker`` when it looks up ``lookup`` (``ld.mold``).

    clang searches the directory of its real binary first, then PATH; the bare
    name is only good when what it finds there is the binary that was smoke-tested.
    """
    found = ctx.fact(f"tool.{lookup}")
    if _given(ctx, "tool.clang") or _given(ctx, f"tool.{lookup}"):
        # Another machine's paths: they cannot be looked at here; trust the facts.
        return bool(found)
    beside = os.path.join(os.path.dirname(os.path.realpath(clang)), lookup)
    if hasattr(ctx, "depends_on_file"):
        # Which file clang would run, and that it is the tested one (buildpolicy.replay).
        for path in (beside, *([found] if found else [])):
            ctx.depends_on_file(path)
    if os.path.isfile(beside):
        return _same_file(beside, linker)
    return bool(found) and _same_file(found, linker)


def _given(ctx, fact: str) -> bool:
    """The fact comes from ``--facts``/a test case (another machine), not from probing this one."""
    try:
        return ctx.facts.source(fact) in ("override", "hermetic")
    except (AttributeError, KeyError):
        return False


def _smoke_cache(ctx):
    from buildpolicy.facts.cache import ProbeCache

    return ProbeCache(Path(ctx.cache_dir) / "probes" / SMOKE_CACHE)


def _linker_problem(stderr: str, returncode: int) -> str:
    # A linker's own error comes before clang's generic last line: keep the first few.
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "linker command failed" not in line]
    return "; ".join(lines[:3]) or f"exit status {returncode}"


def _run(argv: list[str], *, env, cwd: str, timeout: float) -> tuple[int | None, str, str]:
    """Run ``argv``; return ``(returncode or None, stdout, what went wrong)`` (never hangs)."""
    from buildpolicy.facts.subproc import run_text

    return run_text(argv, env=env, cwd=cwd, timeout=timeout, summarize=_linker_problem)


def smoke_test(clang: str, linker: str, fuse: str, *, environ, scratch_parent: Path,
               link_timeout: float | None = None, run_timeout: float | None = None,
               cross: tuple[tuple[str, ...], str, int] | None = None) -> tuple[bool | None, str]:
    """Link and run a tiny C program with ``clang -fuse-ld=<fuse>``.

    Returns ``(True, message)`` when it works, ``(False, why)`` when it does not,
    and ``(None, why)`` when a step timed out (worth trying again later).
    ``linker`` is only named in messages; ``fuse`` is what clang is given.
    Timeouts default to ``LINK_TIMEOUT`` and ``RUN_TIMEOUT``.

    ``cross`` is ``(driver args, target triple, ELF machine)`` for a foreign target
    (``clang --target=…`` or a cross gcc): the program is linked with those args and
    not run (this machine cannot); its ELF header must name that machine (0: any).
    """
    import shutil
    import tempfile

    try:
        scratch_parent.mkdir(parents=True, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix="linker-smoke-", dir=scratch_parent)
    except OSError:
        scratch = tempfile.mkdtemp(prefix="buildpolicy-linker-smoke-")  # a read-only cache dir
    env = dict(environ)
    env["LC_ALL"] = "C"  # stable, English error messages for the reason
    try:
        source = os.path.join(scratch, "smoke.c")
        program = os.path.join(scratch, "smoke")
        with open(source, "w", encoding="utf-8") as handle:
            handle.write(SMOKE_SOURCE)
        args = cross[0] if cross else ()
        driver = " ".join([os.path.basename(clang), *args, f"-fuse-ld={fuse}"])
        code, _out, problem = _run([clang, *args, f"-fuse-ld={fuse}", source, "-o", program], env=env, cwd=scratch,
                                   timeout=LINK_TIMEOUT if link_timeout is None else link_timeout)
        if code is None:
            return (None if "did not answer" in problem else False), problem
        if code != 0:
            return False, f"{driver} could not link a test program: {problem}"
        if cross:
            return _check_machine(program, driver, *cross[1:])
        code, out, problem = _run([program], env=env, cwd=scratch,
                                  timeout=RUN_TIMEOUT if run_timeout is None else run_timeout)
        if code is None:
            return (None if "did not answer" in problem else False), f"the program linked by {linker} did not run: {problem}"
        if code != 0 or out.strip() != SMOKE_OUTPUT:
            return False, f"the program linked by {linker} failed (exit {code}): {problem if code else repr(out.strip())}"
        return True, f"clang -fuse-ld={fuse} linked and ran a test program"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_machine(program: str, driver: str, target: str, machine: int) -> tuple[bool, str]:
    """Whether ``program`` is an ELF file for ``machine`` (``e_machine``; 0 accepts any)."""
    try:
        with open(program, "rb") as handle:
            header = handle.read(20)
    except OSError as exc:
        return False, f"{driver} left no readable program: {exc.strerror or exc}"
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return False, f"{driver} did not link an ELF program"
    found = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    if machine and found != machine:
        return False, f"{driver} linked a program for ELF machine {found}, not {target} ({machine})"
    return True, f"{driver} linked a test program for {target}"


def cached_smoke_test(ctx, clang: str, linker: str, fuse: str,
                      cross: tuple[tuple[str, ...], str, int] | None = None) -> tuple[bool, str]:
    """``smoke_test`` once per identity of clang and the linker (and per ``cross`` target),
    remembered in the cache dir.

    Warm runs only stat the two binaries and read the cache file.
    """
    from buildpolicy.facts.cache import binary_identity, cache_key

    clang_id, linker_id = binary_identity(clang), binary_identity(linker)
    if clang_id is None or linker_id is None:
        return False, f"{clang if clang_id is None else linker} cannot be read"
    cache = _smoke_cache(ctx)
    key = cache_key("linker-smoke", fuse, clang_id, linker_id, *([list(cross[0]), cross[1]] if cross else []))
    cached = cache.get(key)
    now = time.time()
    if _valid_smoke_entry(cached, now):
        ok, message, when = cached
        if ok or now - when < FAILURE_TTL:
            _depend_on_smoke_test(ctx, ok, clang, linker, cache)
            return ok, f"{message} (cached smoke test)"
    ok, message = smoke_test(clang, linker, fuse, environ=ctx.environ, scratch_parent=_scratch_parent(ctx), cross=cross)
    if ok is None:
        return False, f"smoke test timed out: {message}"  # not cached: a busy machine is asked again
    cache.put(key, [ok, message, now])
    _depend_on_smoke_test(ctx, ok, clang, linker, cache)
    return ok, message


def _scratch_parent(ctx) -> Path:
    """Where the smoke test builds and runs its program: ``<cache dir>/tmp``, unless another
    user could write to the cache dir (they could swap the program before it runs); then
    the system's temporary directory, where ``mkdtemp`` makes a private directory."""
    from buildpolicy.filestate import unsafe_directory

    if unsafe_directory(ctx.cache_dir) is None:
        return Path(ctx.cache_dir) / "tmp"
    import tempfile

    return Path(tempfile.gettempdir())


def _valid_smoke_entry(cached, now: float) -> bool:
    """Whether a cached smoke-test result is ``[ok: bool, message: str, when: time not in the future]``.

    Anything else (a damaged or hand-edited cache) is not a result: the test runs
    again and its result replaces the entry, rather than a fast linker being
    dropped (or kept) on the word of a corrupt file.
    """
    if not (isinstance(cached, list) and len(cached) == 3):
        return False
    ok, message, when = cached
    return (isinstance(ok, bool) and isinstance(message, str)
            and isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when)
            and when <= now + 60)


def _depend_on_smoke_test(ctx, ok: bool, clang: str, linker: str, cache) -> None:
    """A passed smoke test holds while the two binaries and the cache stay the same;
    a failed one is retried after FAILURE_TTL, which a warm replay cannot see."""
    if not hasattr(ctx, "depends_on_file"):
        return
    if ok:
        for path in (clang, linker, cache.path):
            ctx.depends_on_file(path)
    else:
        ctx.not_replayable("a failed linker smoke test is retried after a while")


def _try_fast(ctx, name: str, tool: str, lookup: str, clang: str | None, *, driver: str = "clang",
              cross: tuple[tuple[str, ...], str, int] | None = None) -> tuple[tuple | None, str]:
    """``((clang, fuse), note)`` when fast linker ``name`` can be used, else ``(None, why not)``.

    ``clang`` is the linker driver's path (``driver`` names it in notes: ``clang``, or a
    cross gcc that only looks linkers up by name); ``cross`` as for ``smoke_test``.
    """
    path = ctx.fact(f"tool.{tool}")
    if not path:
        return None, f"{name}: {tool} not found"
    if not clang:
        return None, f"{name}: {tool} found at {path} but {driver} (the linker driver) not found"
    finds = _clang_finds(ctx, clang, lookup, path) if driver == "clang" else _gcc_finds(ctx, lookup, path)
    fuse = name if finds else path
    if driver != "clang" and fuse != name:
        return None, f"{name}: {driver} would not find {path} as {lookup}"
    if _shared_cache(ctx) and fuse != name:
        return None, (f"{name}: clang would not find {path} as {lookup}, and its absolute path in -fuse-ld= would "
                      "differ between machines sharing the sccache backend (a cache-key difference)")
    if any(c.isspace() for c in fuse):
        return None, f"{name}: {path} contains whitespace, which rustflags cannot carry"
    if _given(ctx, f"tool.{tool}") or _given(ctx, f"tool.{driver}"):
        return (clang, fuse), f"{tool} {path} and {driver} {clang} are given facts (another machine): not smoke-tested"
    problem = ctx.repository_binary_problem(clang, path)
    if problem:
        return None, f"{name}: not smoke-tested: {problem}"
    ok, message = cached_smoke_test(ctx, clang, path, fuse, cross)
    if not ok:
        return None, f"{name}: {path} failed the smoke test: {message}"
    return (clang, fuse), f"{path}: {message}"


def _gcc_finds(ctx, lookup: str, linker: str) -> bool:
    """Whether gcc's ``-fuse-ld=<name>`` would run ``linker``: gcc looks ``ld.<name>`` up on PATH."""
    found = ctx.fact(f"tool.{lookup}")
    if _given(ctx, f"tool.{lookup}"):
        return bool(found)
    if hasattr(ctx, "depends_on_file") and found:
        ctx.depends_on_file(found)
    return bool(found) and _same_file(found, linker)


def _shared_cache(ctx) -> bool:
    """Whether sccache may share its cache with other machines (knob ``sccache_backend`` not ``local``):
    then what cargo passes rustc (``-C linker=``, rustflags) must not name this machine's paths."""
    try:
        value = ctx.knob("sccache_backend")
    except KeyError:
        return False
    return value not in (None, "", "local") and ctx.knob("sccache") != "off"


def _portable_clang(ctx, clang: str) -> tuple[str, str]:
    """``(linker value, note)``: the bare ``clang`` with a shared sccache backend when the build's
    PATH finds the smoke-tested clang under that name (cargo passes ``-C linker=<value>`` to rustc,
    and sccache hashes it: an absolute path differs between machines); else the absolute path."""
    if not _shared_cache(ctx) or _given(ctx, "tool.clang"):
        return clang, ""
    import shutil

    found = shutil.which("clang", path=ctx.environ.get("PATH", ""))
    if hasattr(ctx, "depends_on_file") and found:
        ctx.depends_on_file(found)
    if found and os.path.isabs(found) and _same_file(found, clang) and not ctx.repository_binary_problem(found):
        return "clang", (f" (CARGO_TARGET_<TRIPLE>_LINKER=clang, found on PATH as {found}: a shared sccache backend "
                         "needs the same -C linker= on every machine)")
    return clang, (f" (PATH does not find {clang} as clang: its absolute path reaches sccache's key, so machines "
                   "with clang elsewhere miss each other's compilations)")


@hookimpl
def buildpolicy_decide(ctx):
    """Decide the linker: inherited, skipped, mold, lld or the system default, for the
    host and for each foreign target of a cross build (``buildpolicy_plugins.linker_targets``)."""
    from buildpolicy_plugins import linker_targets

    decision = _decide_host(ctx)
    if decision.status == "skipped-os" and ctx.fact("os") != "linux":
        return decision  # not a Linux host: nothing to decide for any target either
    return linker_targets.with_targets(ctx, decision, sys.modules[__name__], ctx.fact("host.triple"))


def _decide_host(ctx):
    """The host's linker decision (its variables are the host triple's)."""
    os_ = ctx.fact("os")
    if os_ != "linux":
        why = "the OS is unknown" if os_ is None else f"fast linkers are only configured on Linux, not {os_}"
        return Decision("linker", None, "skipped-os", why)
    triple = ctx.fact("host.triple")
    inherited = _inherited_linker(ctx, triple)
    if inherited:
        linker, where = inherited
        return Decision("linker", linker, f"inherited:{linker}", f"the caller's {where} already chooses the linker ({linker}); kept")

    knob = ctx.knob("linker")
    source = ctx.knob_source("linker")
    if knob == "system":
        return Decision("linker", "system", "system", f"knob linker = system ({source}); {system_meaning(ctx, triple)}")
    profile = ctx.fact("cargo.profile")
    if knob == "auto" and profile in _skip_profiles(ctx):
        return Decision("linker", None, f"skipped-profile:{profile}",
                        f"profile {profile} is in [linker] skip_profiles: the default linker is kept")
    if not triple:
        return Decision("linker", "system", "system",
                        f"host.triple is unknown, so CARGO_TARGET_<TRIPLE>_LINKER cannot be named; {system_meaning(ctx, None)}")

    wanted = [entry for entry in FAST_LINKERS if knob in ("auto", entry[0])]
    clang = ctx.fact("tool.clang")
    notes = []
    for name, tool, lookup in wanted:
        chosen, note = _try_fast(ctx, name, tool, lookup, clang)
        if chosen is None:
            notes.append(note)
            continue
        clang_path, fuse = chosen
        clang_path, portable = _portable_clang(ctx, clang_path)
        skipped = f" (skipped: {'; '.join(notes)})" if notes else ""
        why = f"knob linker = {name} ({source})" if knob != "auto" else "auto picks the fastest working linker"
        return Decision(
            "linker", name, name,
            f"{why}: {note}; cargo links through {clang_path} -fuse-ld={fuse}{portable}{skipped}{_overridden_config(ctx, triple)}",
            set_env={f"CARGO_TARGET_{triple_env(triple)}_LINKER": clang_path},
            rustflags=("-C", f"link-arg=-fuse-ld={fuse}"),
        )
    if knob != "auto":
        ctx.warn(f"knob linker = {knob} ({source}) cannot be used: {'; '.join(notes)}; using the system linker")
    return Decision("linker", "system", "system", f"{'; '.join(notes)}; {system_meaning(ctx, triple)}")

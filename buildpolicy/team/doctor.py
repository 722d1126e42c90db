"""``buildpolicy doctor``: the build-environment traps that cost teams hours, each with its fix.

Checks run on the environment a build would get (the caller's environment
with buildpolicy's decisions applied) plus the cargo configuration files:

- ``rustflags-shadowed``: cargo uses exactly one source of rustflags, the
  first set of ``CARGO_ENCODED_RUSTFLAGS``, ``RUSTFLAGS``, the target's
  rustflags (``CARGO_TARGET_<TRIPLE>_RUSTFLAGS`` and ``[target.<triple>]`` /
  ``[target.'cfg(...)']`` ``rustflags`` in ``.cargo/config.toml``), and
  ``[build] rustflags`` (``CARGO_BUILD_RUSTFLAGS``). Every lower source that
  is also set is silently ignored — even by an empty ``RUSTFLAGS=``.
- ``sccache-incremental``: ``RUSTC_WRAPPER`` is sccache but the build is
  incremental; sccache cannot cache incremental compilation.
- ``linker-overridden``: a ``[target.<triple>] linker`` in a cargo configuration file
  that ``CARGO_TARGET_<TRIPLE>_LINKER`` (buildpolicy's linker decision, or the caller's)
  overrides, so the file's linker is silently never used.
- ``linker-missing``: ``CARGO_TARGET_<TRIPLE>_LINKER`` (or ``[target.*] linker``,
  ``-C linker=``, ``-C link-arg=-fuse-ld=``) names a binary that is not there.
- ``jobs-over-memory``: an inherited ``CARGO_BUILD_JOBS`` asks for more
  parallel rustc processes than available memory allows (at ``mib_per_job``).
- ``stale-shell``: the environment a previous ``env`` exported into this shell
  (``BUILDPOLICY_ENV_STATE``) is not what ``env`` gives now: the shell has not picked
  up a policy, knob or trust change yet (direnv not reloaded, no prompt hook).
- ``flags-changed``: the flags differ from those of the last build of the same
  profile into the same target directory, so cargo will rebuild everything.
  The last build's flags are the *flag fingerprints* kept in
  ``$XDG_STATE_HOME/buildpolicy/fingerprints/`` that ``exec`` records
  (``buildpolicy.run.fingerprints``).
- ``shared-cache-keys``: with a shared sccache backend (``sccache_backend``),
  an input of sccache's key names something of this machine (a ``CARGO_*``
  value or rustflags with its paths, an absolute ``-C linker=``, registry
  sources under a per-user ``CARGO_HOME``, a checkout path other than the one
  the team declares as ``[sccache] checkout_path``): other machines miss those
  compilations. A note always says what must match (checkout path, toolchain).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildpolicy.record import frozen
from buildpolicy.facts.cargo_config import ConfigValue, cargo_config_files, first_value, read_cargo_config
from buildpolicy.run.fingerprints import build_flags, last_build_flags, target_dir_for

MIB = 1 << 20
DEFAULT_MIB_PER_JOB = 1792


@frozen
class Problem:
    """One trap found: a stable ``check`` id, what is wrong, details, and the fix."""

    check: str
    message: str
    fix: str
    details: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``doctor --format json``."""
        return {"check": self.check, "message": self.message, "details": list(self.details), "fix": self.fix}


# --------------------------------------------------------------------------- checks


def _origin(result, name: str) -> str:
    """Where a variable of the build environment comes from, for messages."""
    if name in result.set_env:
        return result.provenance[name].describe() if name in result.provenance else "buildpolicy"
    return "your environment"


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def check_rustflags(result, env: Mapping[str, str], config: list[ConfigValue]) -> list[Problem]:
    """``rustflags-shadowed``: a higher rustflags source makes cargo ignore lower ones."""
    triple = result.facts.get("host.triple")
    target_var = f"CARGO_TARGET_{triple.upper().replace('-', '_')}_RUSTFLAGS" if triple else None
    # (description, is it set) from the highest precedence down, as cargo reads them.
    sources: list[tuple[str, str]] = []
    for var in ("CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS"):
        if var in env:
            sources.append((var, f"{var}={_show(env[var])} ({_origin(result, var)})"))
    target_sources = []
    if target_var and target_var in env:
        target_sources.append(f"{target_var}={_show(env[target_var])} ({_origin(result, target_var)})")
    for value in config:
        if value.key.endswith(".rustflags") and value.key.startswith("target."):
            target = value.key[len("target.") : -len(".rustflags")]
            if target == triple:
                target_sources.append(f"[target.{target}] rustflags = {_show(value.value)} in {value.where}")
            elif target.startswith("cfg("):
                target_sources.append(f"[target.'{target}'] rustflags = {_show(value.value)} in {value.where} "
                                      "(where the cfg matches)")
    if target_sources:
        sources.append(("target", "; ".join(target_sources)))
    build_sources = []
    if "CARGO_BUILD_RUSTFLAGS" in env:
        build_sources.append(f"CARGO_BUILD_RUSTFLAGS={_show(env['CARGO_BUILD_RUSTFLAGS'])} "
                             f"({_origin(result, 'CARGO_BUILD_RUSTFLAGS')})")
    else:
        configured = first_value(config, "build.rustflags")
        if configured is not None:
            build_sources.append(f"[build] rustflags = {_show(configured.value)} in {configured.where}")
    if build_sources:
        sources.append(("build", "; ".join(build_sources)))
    if len(sources) < 2:
        return []
    winner, ignored = sources[0], sources[1:]
    if winner[0] == "RUSTFLAGS":
        fix = ("unset RUSTFLAGS (an empty RUSTFLAGS= counts as set) and put those flags where they combine: "
               f"{target_var or 'CARGO_TARGET_<TRIPLE>_RUSTFLAGS'} or [target.<triple>] rustflags, or add the "
               "ignored flags to RUSTFLAGS")
    elif winner[0] == "CARGO_ENCODED_RUSTFLAGS":
        fix = "unset CARGO_ENCODED_RUSTFLAGS (it is meant for build tools, not shells), or add the ignored flags to it"
    else:
        fix = ("cargo never merges [build] rustflags with target rustflags: move the [build] rustflags into "
               "[target.<triple>] rustflags, or add them to the target's flags")
    return [
        Problem(
            "rustflags-shadowed",
            f"cargo takes its rustflags from {winner[1]} only; these are ignored:",
            fix,
            tuple(desc for _, desc in ignored),
        )
    ]


def _is_sccache(wrapper: str) -> bool:
    return os.path.basename(wrapper.strip()).split(".")[0] == "sccache"


def check_sccache(result, env: Mapping[str, str], config: list[ConfigValue]) -> list[Problem]:
    """``sccache-incremental``: sccache as the rustc wrapper of an incremental build caches nothing."""
    wrapper, where = None, ""
    for var in ("RUSTC_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER"):
        if env.get(var):
            wrapper, where = env[var], f"{var}={env[var]} ({_origin(result, var)})"
            break
    if wrapper is None:
        configured = first_value(config, "build.rustc-wrapper")
        if configured is not None and isinstance(configured.value, str) and configured.value:
            wrapper, where = configured.value, f"[build] rustc-wrapper = {configured.value!r} in {configured.where}"
    if wrapper is None or not _is_sccache(wrapper):
        return []
    # As cargo decides: CARGO_INCREMENTAL beats the profile's setting, which the
    # build environment may set (CARGO_PROFILE_<P>_INCREMENTAL) or Cargo.toml gives.
    profile_var = f"CARGO_PROFILE_{result.facts.get('cargo.profile_env')}_INCREMENTAL"
    if "CARGO_INCREMENTAL" in env:
        incremental, why = env["CARGO_INCREMENTAL"].strip() == "1", f"CARGO_INCREMENTAL={env['CARGO_INCREMENTAL']}"
    elif profile_var in env:
        incremental, why = env[profile_var].strip().lower() == "true", f"{profile_var}={env[profile_var]}"
    else:
        incremental, why = result.facts.get("cargo.incremental"), f"profile {result.profile}"
    if not incremental:
        return []
    return [
        Problem(
            "sccache-incremental",
            f"sccache wraps rustc ({where}) but the build is incremental ({why}): sccache cannot cache incremental "
            "compilation, so every crate of the workspace is a cache miss with sccache's overhead on top",
            "build with CARGO_INCREMENTAL=0 where caching matters (CI, release), or drop RUSTC_WRAPPER for "
            "incremental profiles: buildpolicy's sccache decision does that unless the sccache knob is on "
            "(`buildpolicy set sccache auto`)",
        )
    ]


_FUSE_LD = {"mold": ("ld.mold", "mold"), "lld": ("ld.lld",), "gold": ("ld.gold",), "bfd": ("ld.bfd", "ld")}


def _find_binary(name: str, path_var: str | None, base: Path) -> str | None:
    if os.sep in name or (os.altsep and os.altsep in name):
        candidate = Path(name) if os.path.isabs(name) else base / name
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(name, path=path_var)


def _rustflag_words(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        return shlex.split(str(value))
    except ValueError:
        return str(value).split()


def _linkers_in_flags(words: list[str]) -> list[tuple[str, str]]:
    """``(kind, value)`` for ``-C linker=X`` and ``-C link-arg=-fuse-ld=X`` in rustflags words."""
    found = []
    joined = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-C", "--codegen") and i + 1 < len(words):
            joined.append(words[i + 1])
            i += 2
            continue
        if word.startswith("-C") and len(word) > 2:
            joined.append(word[2:])
        i += 1
    for option in joined:
        if option.startswith("linker="):
            found.append(("linker", option.split("=", 1)[1]))
        elif option.startswith("link-arg=-fuse-ld=") or option.startswith("link-args=-fuse-ld="):
            found.append(("fuse-ld", option.split("-fuse-ld=", 1)[1].split()[0]))
    return found


def check_linker(result, env: Mapping[str, str], config: list[ConfigValue], cwd: Path) -> list[Problem]:
    """``linker-missing``: a linker setting names a binary that does not exist."""
    path_var = env.get("PATH")
    missing: list[str] = []
    triple = result.facts.get("host.triple")
    for name, value in sorted(env.items()):
        if name.startswith("CARGO_TARGET_") and name.endswith("_LINKER") and value:
            if _find_binary(value, path_var, cwd) is None:
                missing.append(f"{name}={value} ({_origin(result, name)}): {value} not found")
    for item in config:
        if item.key.endswith(".linker") and isinstance(item.value, str) and item.value:
            target = item.key[len("target.") : -len(".linker")]
            var = f"CARGO_TARGET_{target.upper().replace('-', '_')}_LINKER"
            if var in env or (triple and target != triple):
                continue  # overridden by the variable, or for another target
            # Cargo resolves a relative path with a slash against the directory holding .cargo/.
            base = Path(item.file).parent.parent
            if _find_binary(item.value, path_var, base) is None:
                missing.append(f"[target.{target}] linker = {item.value!r} in {item.where}: not found")
    for name, value in sorted(env.items()):
        if not (name in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS") or (name.startswith("CARGO_TARGET_") and name.endswith("_RUSTFLAGS"))):
            continue
        words = value.split("\x1f") if name == "CARGO_ENCODED_RUSTFLAGS" else _rustflag_words(value)
        for kind, linker in _linkers_in_flags(words):
            if kind == "linker":
                if _find_binary(linker, path_var, cwd) is None:
                    missing.append(f"{name} has -C linker={linker} ({_origin(result, name)}): {linker} not found")
            elif os.sep in linker:
                if _find_binary(linker, path_var, cwd) is None:
                    missing.append(f"{name} has -fuse-ld={linker} ({_origin(result, name)}): {linker} not found")
            elif linker in _FUSE_LD and not any(_find_binary(b, path_var, cwd) for b in _FUSE_LD[linker]):
                wanted = " or ".join(_FUSE_LD[linker])
                missing.append(f"{name} has -fuse-ld={linker} ({_origin(result, name)}): no {wanted} on PATH")
    if not missing:
        return []
    return [
        Problem(
            "linker-missing",
            "a linker setting names a binary that is not installed, so every link fails:",
            "install it, or remove the setting; buildpolicy's linker decision only picks a linker that is installed "
            "and passes a smoke test (`buildpolicy set linker auto`, `buildpolicy explain linker`)",
            tuple(missing),
        )
    ]


def check_linker_overridden(result, env: Mapping[str, str], config: list[ConfigValue]) -> list[Problem]:
    """``linker-overridden``: a ``[target.<triple>] linker`` in a cargo configuration file that
    ``CARGO_TARGET_<TRIPLE>_LINKER`` overrides (cargo reads the variable first), silently."""
    triple = result.facts.get("host.triple")
    found: list[str] = []
    for item in config:
        if not (item.key.startswith("target.") and item.key.endswith(".linker") and isinstance(item.value, str)):
            continue
        target = item.key[len("target.") : -len(".linker")]
        var = f"CARGO_TARGET_{target.upper().replace('-', '_').replace('.', '_')}_LINKER"
        if var in env and env[var] != item.value and (not triple or target == triple):
            found.append(f"[target.{target}] linker = {item.value!r} in {item.where} is overridden by "
                         f"{var}={env[var]} ({_origin(result, var)})")
    if not found:
        return []
    return [
        Problem(
            "linker-overridden",
            "a linker set in a cargo configuration file is never used: an environment variable overrides it:",
            "keep the file's linker with `buildpolicy set linker system` (or unset the variable), "
            "or remove the setting from the file",
            tuple(found),
        )
    ]


def check_jobs(result, env: Mapping[str, str]) -> list[Problem]:
    """``jobs-over-memory``: an inherited CARGO_BUILD_JOBS above what available memory allows."""
    inherited = result.baseline.get("CARGO_BUILD_JOBS")
    if inherited is None or "CARGO_BUILD_JOBS" in result.set_env or env.get("CARGO_BUILD_JOBS") != inherited:
        return []  # buildpolicy replaced it (a jobs knob), or it is not inherited
    try:
        jobs = int(inherited.strip())
    except ValueError:
        return []  # the jobs decision already warns about a malformed value
    available = result.facts.get("memory.available")
    if available is None or jobs <= 0:
        return []
    knob = result.knobs.get("mib_per_job")
    budget = knob.value if knob is not None and isinstance(knob.value, int) else DEFAULT_MIB_PER_JOB
    fits = max(1, available // (budget * MIB))
    if jobs <= fits:
        return []
    return [
        Problem(
            "jobs-over-memory",
            f"CARGO_BUILD_JOBS={inherited} is inherited from your environment, but {available // MIB} MiB available "
            f"at {budget} MiB per rustc job fits {fits}: a build can run the machine out of memory (swap storms, "
            "the OOM killer ending rustc or your editor)",
            "unset CARGO_BUILD_JOBS so buildpolicy picks the job count from free memory, or set a knob that says "
            "what you mean: `buildpolicy set jobs N` / BUILDPOLICY_JOBS=N (or mib_per_job for the memory budget)",
        )
    ]


def check_flags_changed(result, target_dir: Path) -> list[Problem]:
    """``flags-changed``: the flags differ from the last build of this profile into this target dir."""
    before = last_build_flags(result.paths.state_dir, result.profile, target_dir)
    if before is None:
        return []
    now = build_flags(result)
    changed = []
    for name in sorted(set(before) | set(now)):
        if before.get(name) != now.get(name):
            was = "unset" if name not in before else _show(before[name])
            is_ = "unset" if name not in now else _show(now[name])
            changed.append(f"{name}: last build {was}, now {is_}")
    if not changed:
        return []
    return [
        Problem(
            "flags-changed",
            f"the flags differ from the last build of profile {result.profile} into {target_dir}: "
            "cargo will rebuild every crate",
            "build with the same settings as last time, or give this flag set its own target directory "
            "(CARGO_TARGET_DIR) so both stay warm",
            tuple(changed),
        )
    ]


STALE_SHELL = "your shell's environment is from an older policy; run direnv reload / open a new prompt"


def check_stale_shell(prompt_result, environ: Mapping[str, str]) -> list[Problem]:
    """``stale-shell``: the variables a previous ``env`` exported into this shell (its
    ``BUILDPOLICY_ENV_STATE`` record) are not what ``env`` gives now; a policy, knob or
    trust change the shell has not picked up yet (direnv not reloaded, a prompt without
    the hook). ``prompt_result`` is the evaluation of a plain ``env`` here. A variable
    the user changed since that ``env`` is theirs and not counted."""
    from buildpolicy.engine.envstate import STATE_VAR, digest_matches, recorded_set
    from buildpolicy.policy.buildvars import is_build_variable

    recorded = recorded_set(environ)
    if recorded is None:
        return []
    now = {name: value for name, value in prompt_result.set_env.items()
           if name != STATE_VAR and is_build_variable(name)}
    stale = []
    for name in sorted(set(recorded) | set(now)):
        shell = environ.get(name)
        shown = "unset" if shell is None else _show(shell)
        if name in recorded and not digest_matches(shell, recorded[name]):
            continue  # changed by the user since: theirs
        if name not in now:
            stale.append(f"{name}: your shell has {shown} from an earlier `env`; now it is not set by buildpolicy")
        elif shell != now[name]:
            stale.append(f"{name}: your shell has {shown}; `env` now gives {_show(now[name])}")
    if not stale:
        return []
    return [Problem(
        "stale-shell",
        STALE_SHELL,
        "with direnv: `direnv reload`; with `buildpolicy hook`: the next prompt applies it; otherwise "
        "`eval \"$(buildpolicy env)\"` again or open a new shell",
        tuple(stale),
    )]


def diagnose(result, cwd: Path | None = None) -> tuple[list[Problem], list[str]]:
    """Run every check on ``result``; return the problems and notes (unreadable config files)."""
    cwd = Path(os.path.abspath(cwd or result.facts.ctx.cwd))
    env = result.exec_env()
    config, notes = read_cargo_config(cargo_config_files(cwd, env))
    problems = [
        *check_rustflags(result, env, config),
        *check_sccache(result, env, config),
        *check_linker(result, env, config, cwd),
        *check_linker_overridden(result, env, config),
        *check_jobs(result, env),
        *check_flags_changed(result, target_dir_for(result, cwd)),
    ]
    shared, note = check_shared_cache(result, env, config, cwd)
    problems += shared
    notes += [note] if note else []
    return problems, notes


def check_shared_cache(result, env: Mapping[str, str], config: list[ConfigValue], cwd: Path) -> tuple[list[Problem], str | None]:
    """``shared-cache-keys``: with a shared sccache backend, every key input that differs between machines."""
    decision = result.decisions.get("sccache")
    if decision is None or not decision.status.startswith("enabled:"):
        return [], None
    from buildpolicy.run.cache.keys import machine_inputs, stripped_variables

    triple = result.facts.get("host.triple")
    wrapper = env.get("RUSTC_WRAPPER", "")
    wrapped = os.path.basename(wrapper).startswith("sccache-") and os.path.basename(os.path.dirname(wrapper)) == "wrappers"
    linkers = {name: env[name] for name in env if name.startswith("CARGO_TARGET_") and name.endswith("_LINKER")}
    for item in config:
        if item.key.endswith(".linker") and isinstance(item.value, str):
            linkers[f"{item.file} {item.key}"] = item.value
    declared = result.context.option("sccache", "checkout_path")
    registry = False
    for directory in (cwd, *cwd.parents):
        lock = directory / "Cargo.lock"
        if lock.is_file():
            try:
                registry = 'source = "registry+' in lock.read_text(encoding="utf-8", errors="replace")[:4_000_000]
            except OSError:
                pass
            break
    found = machine_inputs(env, str(cwd), wrapped=wrapped, linker_args=linkers,
                           team_checkout=declared if isinstance(declared, str) else None, registry_dependencies=registry)
    rustc = result.facts.get("rust.version")
    note = (f"shared sccache backend ({decision.status}): other machines hit this one's compilations only when they build "
            f"from the same checkout path ({cwd}) into the same target directory (a build script's OUT_DIR is "
            f"under it, and the crates that include from it hash that path) with the same toolchain "
            f"(rustc {rustc or 'unknown'}) and policy"
            + (f"; the key wrapper removes {', '.join(stripped_variables(triple))}" if wrapped else ""))
    if not found:
        return [], note
    return [Problem(
        "shared-cache-keys",
        f"with the shared sccache backend ({decision.status}), {len(found)} input(s) of sccache's cache key differ "
        "between machines: other machines will miss these compilations",
        "keep machine-specific paths out of CARGO_* variables and rustflags (buildpolicy's own decisions do), "
        "give linkers by name (clang, -fuse-ld=mold), and build from the team's checkout path",
        tuple(found),
    )], note


def format_problems(problems: list[Problem]) -> str:
    """Text for people: each problem, its details, and its fix."""
    if not problems:
        return "buildpolicy doctor: no problems found\n"
    lines = [f"buildpolicy doctor: {len(problems)} problem(s) found", ""]
    for problem in problems:
        lines.append(f"[{problem.check}] {problem.message}")
        lines.extend(f"    {detail}" for detail in problem.details)
        lines.append(f"  fix: {problem.fix}")
        lines.append("")
    return "\n".join(lines)

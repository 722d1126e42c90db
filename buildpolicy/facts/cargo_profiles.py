"""cargo.profile_inherits and cargo.incremental from the project's profiles.

Profiles come, lowest precedence first, from the workspace root's Cargo.toml,
``.cargo/config.toml`` files ($CARGO_HOME, then from the filesystem root down to
the working directory), ``CARGO_PROFILE_<NAME>_<KEY>`` variables and ``--config``
arguments, as cargo merges them. Only ``inherits`` and ``incremental`` are read.

The warm replay re-runs these probes, which then find their answer in the probe cache:
paths there are strings (``os.path``), and pathlib is imported only to read the files
again (with fnmatch, re and urllib.parse, it costs a prompt milliseconds).
"""

from __future__ import annotations

import os
import time

from buildpolicy.facts.cargo import cargo_args, profile_env_name
from buildpolicy.facts.unknown import FactUnknown
from buildpolicy.filestate import racy, stat_token

TYPE_CHECKING = False  # pathlib only where the files are read again (see above)
if TYPE_CHECKING:  # pragma: no cover - typing only
    from pathlib import Path

# Cargo's built-in profiles: roots (no parent) and the parents of test/bench.
BUILTIN_PARENTS = {"dev": None, "release": None, "test": "dev", "bench": "release"}
BUILTIN_INCREMENTAL = {"dev": True, "release": False}
_KEYS = ("inherits", "incremental")


# A Cargo.toml or cargo config larger than this is not read (the facts it feeds are unknown).
MAX_MANIFEST_BYTES = 16 << 20


def _load_toml(path: Path) -> dict | None:
    """The TOML table in ``path``; None when it does not exist.

    A file that cannot be read as TOML (not a regular file, huge, malformed,
    nested deeper than the parser goes) makes the facts unknown: FactUnknown.
    """
    import tomllib  # lazy: only profile facts need TOML here

    from buildpolicy.filestate import Refused, read_bounded

    try:
        raw = read_bounded(path, MAX_MANIFEST_BYTES)  # never a FIFO's endless wait
    except Refused as exc:
        raise FactUnknown(f"{path} cannot be read: {exc.strerror}") from None
    except OSError:
        return None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        why = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise FactUnknown(f"{path} is not valid TOML: {why}") from None


def _clean(path: str) -> str:
    """``str(Path(path))`` on POSIX without pathlib: no empty or ``.`` parts, no trailing slash."""
    lead = "//" if path.startswith("//") and not path.startswith("///") else "/" if path.startswith("/") else ""
    return lead + "/".join(part for part in path.split("/") if part and part != ".") or "."


def _ancestors(directory: str) -> list[str]:
    """``directory`` (absolute, clean) and its parents up to the root, nearest first."""
    found = [directory]
    while (parent := os.path.dirname(found[-1])) != found[-1]:
        found.append(parent)
    return found


def _nearest_manifest(start: str) -> str | None:
    for directory in _ancestors(start):
        candidate = os.path.join(directory, "Cargo.toml")
        if os.path.isfile(candidate):
            return candidate
    return None


def find_manifest(start: Path) -> Path | None:
    """The nearest Cargo.toml walking up from ``start`` (absolute), or None."""
    from pathlib import Path

    found = _nearest_manifest(str(Path(start)))
    return None if found is None else Path(found)


def workspace_manifest(manifest: Path, read: list[str] | None = None) -> tuple[Path, dict]:
    """The manifest whose ``[profile]`` tables apply: the workspace root's, else ``manifest`` itself.

    Every manifest looked at is appended to ``read`` (for cache validation).
    """
    read = [] if read is None else read
    read.append(str(manifest))
    data = _load_toml(manifest) or {}
    if "workspace" in data:
        return manifest, data
    explicit = (data.get("package") or {}).get("workspace")
    if isinstance(explicit, str):
        root = manifest.parent / explicit / "Cargo.toml"
        read.append(str(root))
        return root, _load_toml(root) or {}
    for directory in manifest.parent.parents:
        candidate = directory / "Cargo.toml"
        read.append(str(candidate))  # also when missing: a workspace root created later applies
        if candidate.is_file():
            root_data = _load_toml(candidate) or {}
            workspace = root_data.get("workspace")
            if isinstance(workspace, dict):
                relative = manifest.parent.relative_to(directory).as_posix()
                excluded = any(relative == e.rstrip("/") or relative.startswith(e.rstrip("/") + "/")
                               for e in workspace.get("exclude", []) if isinstance(e, str))
                return (manifest, data) if excluded else (candidate, root_data)
    return manifest, data


def _config_files(ctx) -> list[str]:
    # Lowest precedence first: $CARGO_HOME, then ancestors, the working directory last.
    files = []
    home = ctx.home()
    cargo_home = ctx.environ.get("CARGO_HOME") or (os.path.join(home, ".cargo") if home else None)
    dirs = [_clean(cargo_home)] if cargo_home else []
    dirs += [os.path.join(d, ".cargo") for d in reversed(_ancestors(os.path.abspath(ctx.cwd)))]
    seen = set()
    for directory in dirs:
        for name in ("config.toml", "config"):
            path = os.path.join(directory, name)
            if path not in seen and os.path.isfile(path):
                seen.add(path)
                files.append(path)
                break  # cargo reads config.toml and ignores a legacy `config` beside it
    return files


def _merge(profiles: dict, build: dict, data: dict) -> None:
    for name, table in (data.get("profile") or {}).items():
        if isinstance(table, dict):
            profiles.setdefault(name, {}).update({k: table[k] for k in _KEYS if k in table})
    if isinstance(data.get("build"), dict) and "incremental" in data["build"]:
        build["incremental"] = data["build"]["incremental"]
    # Where cargo config sets rustflags: cargo uses target-level flags if any,
    # else [build] ones, so a variable buildpolicy sets can shadow the latter.
    if isinstance(data.get("build"), dict) and "rustflags" in data["build"]:
        build["rustflags"] = True
    if isinstance(data.get("build"), dict) and "target" in data["build"]:
        build["target"] = data["build"]["target"]  # a triple or a list of them; checked where used
    for key, table in (data.get("target") or {}).items():
        if isinstance(table, dict) and "rustflags" in table:
            build.setdefault("target_rustflags", [])
            if key not in build["target_rustflags"]:
                build["target_rustflags"].append(key)


def load_profiles(s) -> tuple[dict[str, dict], dict]:
    """``({profile: {inherits, incremental}}, {incremental: …} of [build])``, merged like cargo.

    The result is kept in the probe cache with the size and mtime of every file
    it read, so a warm run stats those files instead of parsing TOML.
    """
    ctx = s.ctx
    args = cargo_args(s)
    cwd = os.path.abspath(ctx.cwd)
    start = os.path.dirname(_clean(os.path.join(cwd, args.manifest_path))) if args.manifest_path else cwd
    manifest = _nearest_manifest(start)
    config_files = _config_files(ctx)
    key = repr(("cargo-profiles", start, manifest, config_files, tuple(args.config_args)))
    cached = s.cache.get(key)
    if _well_formed(cached) and all(stat_token(path) == token for path, token in cached["files"]):
        s.note_cached()
        return cached["profiles"], cached["build"]

    started = time.time_ns()
    read: list[str] = []
    profiles: dict[str, dict] = {}
    build: dict = {}
    if manifest is not None:
        from pathlib import Path

        _merge(profiles, {}, workspace_manifest(Path(manifest), read)[1])  # [build] is config only
    for path in config_files:
        read.append(path)
        _merge(profiles, build, _load_toml(path) or {})
    for text in args.config_args:
        _merge(profiles, build, _config_arg(cwd, text, read))
    files = [[p, stat_token(p)] for p in read]
    if any(racy(token, started) for _path, token in files):
        return profiles, build  # a file changed while it was read: not cached, read again next time
    try:
        s.cache.put(key, {"files": files, "profiles": profiles, "build": build})
    except (TypeError, ValueError):
        pass  # a value JSON cannot hold (a TOML datetime): just not cached
    return profiles, build


def _well_formed(cached) -> bool:
    """Whether a probe-cache entry has the shape ``load_profiles`` stores (a damaged one is a miss)."""
    if not isinstance(cached, dict) or not isinstance(cached.get("files"), list):
        return False
    if not all(isinstance(f, list) and len(f) == 2 and all(isinstance(p, str) for p in f) for f in cached["files"]):
        return False
    profiles, build = cached.get("profiles"), cached.get("build")
    return (isinstance(profiles, dict) and all(isinstance(t, dict) for t in profiles.values())
            and isinstance(build, dict) and isinstance(build.get("target_rustflags", []), list))


def _config_arg(cwd: str, text: str, read: list[str]) -> dict:
    # `--config KEY=VALUE` is a TOML line; anything else names a config file,
    # relative to the working directory as cargo resolves it.
    import tomllib

    try:
        return tomllib.loads(text)
    except (ValueError, RecursionError):
        path = _clean(os.path.join(cwd, text))
        read.append(path)  # an edit of the file invalidates the cached profiles
        return _load_toml(path) or {}


def _env_setting(environ, profile: str, key: str):
    value = environ.get(f"CARGO_PROFILE_{profile_env_name(profile)}_{key.upper()}")
    if value is None:
        return None
    if key == "incremental":
        return value.strip().lower() == "true"
    return value


def _setting(s, profiles: dict, profile: str, key: str):
    env_value = _env_setting(s.ctx.environ, profile, key)
    return env_value if env_value is not None else profiles.get(profile, {}).get(key)


def inherits_chain(s, profile: str) -> list[str]:
    """``[profile, parent, …, root]`` ending at dev or release; FactUnknown when broken."""
    profiles, _build = s.shared("cargo.profiles", lambda: load_profiles(s))
    chain = [profile]
    while True:
        current = chain[-1]
        if current in ("dev", "release"):
            return chain
        parent = BUILTIN_PARENTS.get(current) or _setting(s, profiles, current, "inherits")
        if not isinstance(parent, str) or not parent:
            if current not in profiles:
                raise FactUnknown(f"profile {current!r} is not defined in Cargo.toml")
            raise FactUnknown(f"custom profile {current!r} does not declare inherits")
        if parent in chain:
            raise FactUnknown(f"profile inherits cycle: {' -> '.join([*chain, parent])}")
        chain.append(parent)


def _profile(s) -> str:
    profile = s.fact("cargo.profile")
    if profile is None:
        raise FactUnknown("cargo.profile is unknown")
    return profile


def probe_profile_inherits(s) -> str:
    """The ``cargo.profile_inherits`` fact: the profile's direct parent, null for dev/release."""
    chain = inherits_chain(s, _profile(s))  # a broken chain makes the parent unknown too
    if len(chain) == 1:
        raise FactUnknown(f"{chain[0]} is a root profile")
    return chain[1]


def probe_incremental(s) -> bool:
    """The ``cargo.incremental`` fact, resolved like cargo.

    ``CARGO_INCREMENTAL`` wins (cargo enables only for ``1``), then ``build.incremental``,
    then the first ``incremental`` along the inherits chain, then the root's default.
    """
    environ = s.ctx.environ
    if "CARGO_INCREMENTAL" in environ:
        return environ["CARGO_INCREMENTAL"] == "1"
    if "CARGO_BUILD_INCREMENTAL" in environ:
        return environ["CARGO_BUILD_INCREMENTAL"].strip().lower() == "true"
    profiles, build = s.shared("cargo.profiles", lambda: load_profiles(s))
    if isinstance(build.get("incremental"), bool):
        return build["incremental"]
    chain = inherits_chain(s, _profile(s))
    for profile in chain:
        value = _setting(s, profiles, profile, "incremental")
        if isinstance(value, bool):
            return value
    return BUILTIN_INCREMENTAL[chain[-1]]


def probe_config_rustflags(s) -> list:
    """Where the cargo configuration sets rustflags: ``build``, ``target:<triple or cfg>``.

    Read from the same config files as the profile facts (``--config`` arguments
    included). Empty when none does.
    """
    _profiles, build = s.shared("cargo.profiles", lambda: load_profiles(s))
    levels = [f"target:{key}" for key in build.get("target_rustflags", [])]
    return (["build"] if build.get("rustflags") else []) + sorted(levels)


def target_name(given: str) -> str:
    """The triple cargo names a target by in variables: the triple itself, or the file
    stem of a target specification path (``targets/armv7-custom.json`` → ``armv7-custom``)."""
    if given.endswith(".json"):
        return os.path.basename(given)[: -len(".json")]
    return given


def probe_targets(s) -> list:
    """The ``cargo.targets`` fact: the triples cargo builds for, as cargo chooses them.

    ``--target`` arguments (several build for each), else ``CARGO_BUILD_TARGET``, else
    ``[build] target`` of the cargo configuration (a triple or a list). Empty when none
    is given: cargo builds for the host.
    """
    given = list(cargo_args(s).targets)
    if not given:
        variable = s.ctx.environ.get("CARGO_BUILD_TARGET", "")
        given = variable.split()
    if not given:
        _profiles, build = s.shared("cargo.profiles", lambda: load_profiles(s))
        configured = build.get("target")
        if isinstance(configured, str):
            given = [configured]
        elif isinstance(configured, list):
            given = [item for item in configured if isinstance(item, str)]
    return list(dict.fromkeys(target_name(item) for item in given if item.strip()))

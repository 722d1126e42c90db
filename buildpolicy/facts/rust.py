"""Rust toolchain probes: rust.toolchains, rust.nightly, rust.version, toolchain_runs().

Toolchains are listed from ``$RUSTUP_HOME/toolchains`` (no subprocess). Running
rustc is the only expensive step; its result is cached by the identity of the
rustc binary on PATH *and* of the toolchain rustup would pick, because the rustup
proxy binary stays the same when the default toolchain changes or is updated.

The warm replay re-runs ``rust.toolchains`` and ``rust.nightly``: they need neither
``re`` nor ``pathlib`` (with enum, fnmatch and urllib.parse, milliseconds of a prompt),
which the other functions import when called.
"""

from __future__ import annotations

import os

from buildpolicy.facts.cache import ProbeCache, binary_identity, cache_key
from buildpolicy.facts.unknown import FactUnknown

TYPE_CHECKING = False  # no attrs on the warm replay path (buildpolicy.replay)
if TYPE_CHECKING:  # pragma: no cover - typing only
    from pathlib import Path

    from buildpolicy.facts.context import ProbeContext
from buildpolicy.facts.subproc import run_text

_EXE = ".exe" if os.name == "nt" else ""


def _rustup_dir(ctx: ProbeContext) -> str | None:
    if ctx.environ.get("RUSTUP_HOME"):
        return ctx.environ["RUSTUP_HOME"]
    home = ctx.home()
    return os.path.join(home, ".rustup") if home else None


def rustup_home(ctx: ProbeContext) -> Path | None:
    """``$RUSTUP_HOME``, else ``~/.rustup`` of the caller's HOME; None without either."""
    from pathlib import Path

    directory = _rustup_dir(ctx)
    return None if directory is None else Path(directory)


def list_toolchains(home: str | os.PathLike) -> list[str]:
    """Sorted names of the toolchains installed (or linked) under ``home``."""
    try:
        with os.scandir(os.path.join(home, "toolchains")) as entries:
            # is_dir() follows symlinks: `rustup toolchain link` makes symlinks.
            return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    except FileNotFoundError:
        return []


def pick_nightly(toolchains: list[str], host: str | None) -> str | None:
    """The nightly toolchain to use, or None.

    Preference: plain ``nightly-<host>`` (the channel ``rustup update`` keeps fresh),
    then the newest dated ``nightly-YYYY-MM-DD-<host>``, then the first nightly in
    sorted order (a custom-linked one, or one for another host).
    """
    nightlies = sorted(name for name in toolchains if name.startswith("nightly"))
    if host and f"nightly-{host}" in nightlies:
        return f"nightly-{host}"
    dated = [name for name in nightlies if _nightly_date(name) and (not host or name.endswith(host))]
    if dated:
        return max(dated, key=_nightly_date)
    return nightlies[0] if nightlies else None


def _nightly_date(name: str) -> str | None:
    """The ``YYYY-MM-DD`` of a dated nightly (``nightly-2026-05-01[-<host>]``), else None.

    What ``^nightly-(\\d{4}-\\d{2}-\\d{2})(?:-|$)`` matches, without ``re``."""
    date, rest = name[8:18], name[18:]
    if not name.startswith("nightly-") or len(date) != 10 or (rest[:1] not in ("", "-") and rest != "\n"):
        return None
    return date if date[4] == date[7] == "-" and (date[:4] + date[5:7] + date[8:]).isdecimal() else None


def probe_rust_toolchains(s) -> list[str]:
    """The ``rust.toolchains`` fact."""
    home = _rustup_dir(s.ctx)
    if home is None or not os.path.isdir(home):
        raise FactUnknown("rustup is not installed (no RUSTUP_HOME or ~/.rustup)")
    return list_toolchains(home)


def probe_rust_nightly(s) -> str:
    """The ``rust.nightly`` fact (see ``pick_nightly`` for which one)."""
    toolchains = s.fact("rust.toolchains")
    if toolchains is None:
        raise FactUnknown("the installed toolchains are unknown")
    nightly = pick_nightly(toolchains, s.fact("host.triple"))
    if nightly is None:
        raise FactUnknown("no nightly toolchain is installed")
    return nightly


def _toolchain_file_choice(path: Path, text: str) -> str:
    """The toolchain a rust-toolchain[.toml] file selects: a channel or custom
    toolchain name, or, for a path toolchain, the absolute path of its directory.

    rust-toolchain.toml has ``[toolchain] channel`` or ``path`` (relative paths are
    relative to the file); a legacy rust-toolchain file may also be a bare line,
    which rustup takes as a path when it holds a path separator.
    """
    try:
        import tomllib

        table = tomllib.loads(text).get("toolchain", {})
        if not isinstance(table, dict):
            return ""
        if table.get("path"):
            return os.path.normpath(os.path.join(path.parent, str(table["path"])))
        return str(table.get("channel") or "")
    except Exception:  # noqa: BLE001 - a bare name is not TOML
        line = text.strip().splitlines()[0].strip() if text.strip() else ""
        return os.path.normpath(os.path.join(path.parent, line)) if is_path_toolchain(line) else line


def is_path_toolchain(toolchain: str) -> bool:
    """Whether ``toolchain`` names a directory (a path toolchain) rather than an installed toolchain."""
    return "/" in toolchain or "\\" in toolchain


MAX_SETTINGS_BYTES = 1 << 20  # rustup's settings.toml and rust-toolchain files are a few lines


def _settings(home: Path, ctx) -> dict:
    """rustup's ``settings.toml``, parsed once per identity of the file and remembered in
    the probe cache: importing ``tomllib`` (with ``typing``) costs a prompt more than the rest
    of the toolchain choice."""
    from buildpolicy.facts.cache import ProbeCache, cache_key
    from buildpolicy.filestate import read_bounded, stat_token

    path = home / "settings.toml"
    identity = stat_token(path)  # inode and ctime too: a rewrite that kept size and mtime counts
    if identity in ("missing", "dangling"):
        return {}
    cache = ProbeCache.for_context(ctx)
    key = cache_key("rustup-settings", identity)
    cached = cache.get(key)
    if isinstance(cached, dict):
        return cached
    try:
        import tomllib

        settings = tomllib.loads(read_bounded(path, MAX_SETTINGS_BYTES).decode("utf-8", "replace"))
    except (OSError, ValueError, RecursionError):
        return {}
    # Only what the toolchain choice reads (a value JSON cannot hold is not cached: ProbeCache.put).
    kept = {name: settings[name] for name in ("default_toolchain", "overrides") if name in settings}
    cache.put(key, kept)
    return kept


def toolchain_selection(ctx: ProbeContext, home: Path | None,
                        looked_at: list[Path] | None = None) -> tuple[str, str | None, str]:
    """How rustup would choose the toolchain here: ``(how, toolchain, detail)``.

    ``how`` is ``argv`` (cargo ``+tc``), ``env`` (RUSTUP_TOOLCHAIN), ``override``
    (``rustup override set``), ``file`` (rust-toolchain[.toml], ``detail`` is its
    content) or ``default``; the toolchain is None when nothing selects one.
    ``looked_at``, when given, receives every file read or looked for (the answer
    holds while none of them changes, appears or disappears).
    """
    looked_at = [] if looked_at is None else looked_at
    from buildpolicy.facts.cargo import parse_cargo_argv
    from buildpolicy.filestate import read_bounded

    override = parse_cargo_argv(ctx.cargo_argv).toolchain_override
    if override:
        return "argv", override, ""
    if ctx.environ.get("RUSTUP_TOOLCHAIN"):
        return "env", ctx.environ["RUSTUP_TOOLCHAIN"], ""
    from pathlib import Path

    if home:
        looked_at.append(home / "settings.toml")
    settings = _settings(home, ctx) if home else {}
    overrides = settings.get("overrides") or {}
    cwd = Path(os.path.abspath(ctx.cwd))
    for directory in (cwd, *cwd.parents):
        if str(directory) in overrides:
            return "override", str(overrides[str(directory)]), str(directory)
        # rustup prefers the legacy name when both files exist.
        for name in ("rust-toolchain", "rust-toolchain.toml"):
            path = directory / name
            looked_at.append(path)
            try:  # a repository's file: never a FIFO that hangs the prompt, never a huge one
                text = read_bounded(path, MAX_SETTINGS_BYTES).decode("utf-8", "replace")
            except OSError:
                continue
            return "file", _toolchain_file_choice(path, text), f"{path}\n{text}"
    default = settings.get("default_toolchain")
    return "default", (str(default) if default else None), ""


def toolchain_rustc(home: Path | None, toolchain: str | None, host: str | None,
                    looked_at: list[Path] | None = None) -> Path | None:
    """The rustc binary of installed toolchain ``toolchain`` (``stable`` → ``stable-<host>``), or None.

    ``looked_at``, when given, receives every path looked for.
    """
    if not home or not toolchain:
        return None
    from pathlib import Path

    home = Path(home)
    names = [toolchain] + ([f"{toolchain}-{host}"] if host else [])
    for name in names:
        rustc = home / "toolchains" / name / "bin" / f"rustc{_EXE}"
        if looked_at is not None:
            looked_at.append(rustc)
        if rustc.is_file():
            return rustc
    return None


def _run_env(ctx: ProbeContext) -> dict[str, str]:
    env = dict(ctx.environ)
    # Never let a prompt hook make rustup download a missing toolchain.
    env["RUSTUP_AUTO_INSTALL"] = "0"
    return env


# rustc runs here, not in the caller's directory: there a rustup proxy would walk
# up through the repository's rust-toolchain files again, and a file written
# between our look and its look would choose the binary.
NEUTRAL_CWD = os.path.abspath(os.sep)

TRUSTED_CHOICES = ("`buildpolicy allow` in the project, `rustup override set`, RUSTUP_TOOLCHAIN "
                   "or `cargo +toolchain`")


def toolchain_file_trusted(ctx, path: Path) -> bool:
    """Whether the rust-toolchain file at ``path`` is the allowed project's own: beside
    the profile file of the project the user allowed as it is now (``ctx.allowed_root``,
    set by the engine when a trust record matches; ``allow`` hashes that file too). A
    file deeper down (a repository cloned inside the project) was never vouched for."""
    root = getattr(ctx, "allowed_root", None)
    return root is not None and os.path.abspath(path.parent) == os.path.abspath(root)


def repository_choice_problem(ctx, home: Path | None, how: str, toolchain: str | None, detail: str,
                              host: str | None) -> str | None:
    """Why buildpolicy must not run the toolchain that ``toolchain_selection`` found, or None.

    The caller's RUSTUP_TOOLCHAIN, a ``+toolchain`` argument, ``rustup override``
    and the default toolchain are the user's choices. A rust-toolchain file is the
    repository's, unless it lies in a project the user allowed: it may only select
    a toolchain rustup installed (a directory under ``$RUSTUP_HOME/toolchains``),
    not a path toolchain nor a custom toolchain linked to a directory elsewhere,
    whose binaries could be the repository's own.
    """
    if how != "file" or not toolchain:
        return None
    from pathlib import Path

    path = Path(detail.split("\n", 1)[0])
    if toolchain_file_trusted(ctx, path):
        return None
    chosen = f"{path} (a file of the repository, not allowed) selects"
    if is_path_toolchain(toolchain):
        return f"{chosen} the toolchain at {toolchain}: its rustc is not run (trusted choices: {TRUSTED_CHOICES})"
    directory = None
    for name in [] if toolchain.startswith(".") else [toolchain] + ([f"{toolchain}-{host}"] if host else []):
        candidate = home / "toolchains" / name if home else None
        if candidate is not None and candidate.is_dir():
            directory = candidate
            break
    if directory is None:
        return f"{chosen} toolchain {toolchain!r}, which is not installed"
    if directory.is_symlink():
        return (f"{chosen} the custom toolchain {toolchain}, linked to {os.path.realpath(directory)}: "
                f"its rustc is not run (trusted choices: {TRUSTED_CHOICES})")
    return None


def probe_rust_version(s) -> str:
    """The ``rust.version`` fact: ``rustc --version`` of the active rustc, cached.

    The toolchain is the one rustup would pick here (``toolchain_selection``),
    handed to rustc as RUSTUP_TOOLCHAIN and run outside the project. A toolchain a
    repository's rust-toolchain file chose is run only when it is an installed one
    (``repository_choice_problem``); otherwise the fact is unknown, with the reason.
    """
    from buildpolicy.facts.tools import which

    ctx = s.ctx
    rustc = which("rustc", ctx, absolute_only=True)
    if rustc is None:
        raise FactUnknown("rustc is not on PATH" if which("rustc", ctx) is None else
                          "rustc is found only through a relative PATH entry, in a directory the repository chose")
    home = rustup_home(ctx)
    host = s.fact("host.triple")
    how, toolchain, detail = toolchain_selection(ctx, home)
    problem = repository_choice_problem(ctx, home, how, toolchain, detail, host)
    if problem:
        raise FactUnknown(problem)
    selected = toolchain_rustc(home, toolchain, host)
    key = cache_key("rustc-version", binary_identity(rustc), how, toolchain, detail,
                    selected and binary_identity(selected))
    cached = s.cache.get(key)
    if isinstance(cached, str):
        s.note_cached()
        return cached
    env = _run_env(ctx)
    if toolchain:
        # What rustup would pick, said explicitly (it is also what `cargo +tc`
        # does for its rustc): no rust-toolchain file is consulted again.
        env["RUSTUP_TOOLCHAIN"] = toolchain
    code, out, problem = run_text([rustc, "--version"], env=env, cwd=NEUTRAL_CWD)
    import re

    match = re.match(r"^rustc (\S+)", out.strip()) if code == 0 else None
    if not match:
        raise FactUnknown(f"rustc --version failed: {problem or out.strip() or 'no output'}")
    s.cache.put(key, match.group(1))
    return match.group(1)


def toolchain_runs(ctx: ProbeContext, name: str, cache: ProbeCache | None = None,
                   looked_at: list[Path] | None = None) -> tuple[bool, str]:
    """Whether installed toolchain ``name``'s rustc runs: ``(ok, rustc --version line or why not)``.

    ``name`` is a toolchain directory name, or a channel (``nightly``) completed
    with this machine's host triple.
    Checked once per rustc binary (path, size, mtime_ns) and remembered in the probe
    cache; a timeout is not remembered, so a slow machine is asked again next time.
    ``looked_at``, when given, receives the binaries looked for and the cache file.
    """
    from buildpolicy.facts.system import machine_triple

    home = rustup_home(ctx)
    if home is None:
        return False, "rustup is not installed (no RUSTUP_HOME or HOME)"
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return False, f"{name!r} is not a toolchain name"
    rustc = toolchain_rustc(home, name, machine_triple(ctx), looked_at)
    identity = rustc and binary_identity(rustc)
    if not identity:
        return False, f"toolchain {name} is not installed (no {home / 'toolchains' / name / 'bin' / 'rustc'})"
    cache = cache or ProbeCache.for_context(ctx)
    if looked_at is not None:
        looked_at.append(cache.path)
    key = cache_key("toolchain-runs", identity)
    cached = cache.get(key)
    if isinstance(cached, list) and len(cached) == 2:
        return bool(cached[0]), str(cached[1])
    code, out, problem = run_text([str(rustc), "--version"], env=_run_env(ctx), cwd=NEUTRAL_CWD)
    if code is None:
        return False, problem
    ok = code == 0 and out.startswith("rustc ")
    message = out.strip() if ok else f"{rustc} --version failed: {problem or out.strip() or 'no output'}"
    cache.put(key, [ok, message])
    return ok, message

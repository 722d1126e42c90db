"""Toolchain archives for sccache-dist, packaged once per toolchain and reused by every build.

A distributed compilation needs the compiler on the build server. sccache
packs it itself on a client's first distributed build (15–25 s for a ~210 MB
rustc toolchain) and again for every other client cache. Instead, ``exec``
packs each toolchain once, before cargo runs, with ``sccache
--package-toolchain RUSTC ARCHIVE`` into ``<cache dir>/sccache/toolchains/``:

- ``<id>.tar.gz``: the archive; ``<id>.json``: which rustc it holds (written
  after the archive is in place, so a manifest means a complete archive).
- ``<id>`` is a hash of the resolved rustc's path and its ``rustc -vV``: the
  same toolchain in every project shares one archive; an upgraded toolchain
  (another ``-vV``) gets a new one, and archives whose rustc is gone are
  removed when a new one is packed.
- Packing holds ``<id>.lock``, so two concurrent execs pack once: the second
  waits and finds the archive.

The client configuration (``dist.conf_text``) lists every packaged toolchain
as a ``[[dist.toolchains]]`` ``path_override``; the decision reads the
manifests only (no process at the prompt).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

MANIFEST_MAX = 64 * 1024
PROBE_TIMEOUT = 30.0
PACK_TIMEOUT = 900.0
LOCK_WAIT = 900.0  # another exec packing the same toolchain: wait for it rather than pack twice


def directory(cache_dir) -> Path:
    """Where the archives live."""
    return Path(cache_dir) / "sccache" / "toolchains"


def packaged(cache_dir) -> list[tuple[str, str]]:
    """``(rustc, archive)`` of every complete archive whose rustc still exists (corrupt manifests ignored)."""
    from buildpolicy.filestate import read_bounded

    found = []
    base = directory(cache_dir)
    try:
        names = sorted(n for n in os.listdir(base) if n.endswith(".json"))
    except OSError:
        return []
    for name in names:
        try:
            data = json.loads(read_bounded(base / name, MANIFEST_MAX))
        except (OSError, ValueError):
            continue
        compiler = data.get("rustc") if isinstance(data, dict) else None
        archive = base / f"{name[:-5]}.tar.gz"
        if isinstance(compiler, str) and os.path.isabs(compiler) and os.path.isfile(compiler) and archive.is_file():
            found.append((compiler, str(archive)))
    return found


def _rustc(env: Mapping[str, str], argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The rustc cargo will run (``RUSTC``, else ``rustc`` on PATH) and the environment to ask it in
    (``cargo +toolchain`` makes rustup pick that toolchain)."""
    env = {k: v for k, v in env.items() if k not in ("RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER")}
    if len(argv) > 1 and argv[1].startswith("+"):
        env["RUSTUP_TOOLCHAIN"] = argv[1][1:]
    return [env.get("RUSTC") or "rustc"], env


def resolve(env: Mapping[str, str], cwd, argv: Sequence[str]) -> tuple[str, str]:
    """``(rustc path, rustc -vV)`` of the toolchain the build uses; the path is the sysroot's
    ``bin/rustc`` (what sccache resolves a rustup proxy to). Raises OSError."""
    command, env = _rustc(env, argv)

    def ask(*args: str) -> str:
        try:
            proc = subprocess.run([*command, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, errors="replace", timeout=PROBE_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OSError(f"{command[0]} {' '.join(args)}: {exc}") from None
        if proc.returncode != 0:
            raise OSError(f"{command[0]} {' '.join(args)} failed: {proc.stderr.strip()[-300:]}")
        return proc.stdout.strip()

    sysroot = ask("--print", "sysroot")
    compiler = os.path.join(sysroot, "bin", "rustc")
    if not os.path.isfile(compiler):
        raise OSError(f"no rustc in the sysroot {sysroot}")
    return compiler, ask("-vV")


def identity(compiler: str, version: str) -> str:
    """The toolchain's identity: its rustc's path and ``-vV``."""
    return hashlib.sha256(f"{compiler}\x00{version}".encode()).hexdigest()[:16]


def ensure(cache_dir, sccache: str, env: Mapping[str, str], cwd, argv: Sequence[str],
           note: Callable[[str], None]) -> tuple[str, bool]:
    """Make sure the build's toolchain is packaged: ``(archive, packed now)``. Raises OSError."""
    from buildpolicy.filestate import atomic_write, unsafe_directory
    from buildpolicy.run.locks import locked

    compiler, version = resolve(env, cwd, argv)
    base = directory(cache_dir)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    problem = unsafe_directory(base)
    if problem:
        raise OSError(problem)
    ident = identity(compiler, version)
    archive, manifest = base / f"{ident}.tar.gz", base / f"{ident}.json"
    if (compiler, str(archive)) in packaged(cache_dir):
        return str(archive), False
    with locked(base / f"{ident}.lock", timeout=LOCK_WAIT) as held:
        if not held:
            raise OSError(f"{base / f'{ident}.lock'} could not be taken within {LOCK_WAIT:g}s")
        if (compiler, str(archive)) in packaged(cache_dir):  # another exec packed it while we waited
            return str(archive), False
        note(f"sccache-dist: packaging the toolchain {compiler} once for every build "
             f"({version.splitlines()[0]}) into {archive}")
        temporary = base / f".{ident}.{os.getpid()}.tar.gz"
        temporary.unlink(missing_ok=True)
        pack_env = {k: v for k, v in env.items() if k != "RUSTC_WRAPPER"}
        try:
            proc = subprocess.run([sccache, "--package-toolchain", compiler, str(temporary)], env=pack_env,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                                  timeout=PACK_TIMEOUT, check=False)
            if proc.returncode != 0 or not temporary.is_file():
                raise OSError(f"sccache --package-toolchain failed: {proc.stderr.strip()[-300:] or proc.returncode}")
            os.chmod(temporary, 0o600)
            os.replace(temporary, archive)
        except subprocess.TimeoutExpired:
            raise OSError(f"sccache --package-toolchain took more than {PACK_TIMEOUT:g}s") from None
        finally:
            temporary.unlink(missing_ok=True)
        atomic_write(manifest, json.dumps({"rustc": compiler, "version": version}, indent=1).encode(), mode=0o600)
        _remove_orphans(base)
    return str(archive), True


def _remove_orphans(base: Path) -> None:
    """Remove archives whose rustc is gone (a toolchain rustup removed or upgraded in place)."""
    from buildpolicy.filestate import read_bounded

    for entry in base.iterdir():
        if entry.suffix == ".json":
            try:
                compiler = json.loads(read_bounded(entry, MANIFEST_MAX)).get("rustc")
            except (OSError, ValueError, AttributeError):
                compiler = None
            if not (isinstance(compiler, str) and os.path.isfile(compiler)):
                entry.unlink(missing_ok=True)
                (base / f"{entry.stem}.tar.gz").unlink(missing_ok=True)


def prepare(result, plan, cwd, note: Callable[[str], None]) -> bool:
    """``exec``, before cargo: package the build's toolchain when sccache-dist is on; True when the
    decided client configuration does not list its archive yet (packed now, or by a concurrent exec
    while this one was deciding): the run must then be decided again. A failure is a warning: sccache
    packs the toolchain itself on its first distributed compilation."""
    decision = result.decisions.get("sccache")
    if decision is None or "+dist" not in decision.status or not decision.value:
        return False
    try:
        archive, _packed = ensure(result.paths.cache_dir, str(decision.value), plan.env, cwd, plan.argv, note)
        conf = plan.env.get("SCCACHE_CONF")
        listed = bool(conf) and json.dumps(archive) in Path(conf).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        result.warnings.append(f"sccache-dist: the toolchain could not be packaged ({exc}); sccache packs it itself "
                               "on the first distributed compilation")
        return False
    return not listed

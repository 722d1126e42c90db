"""The private sccache server of one backend configuration (DESIGN §12).

sccache reads its settings only when its server starts, and a client talks to
whatever server listens where it looks. So each configuration gets its own
socket, ``SCCACHE_SERVER_UDS=<cache dir>/sccache/srv/<identity>.sock``, named
by the hash of the configuration (``backends.identity``): switching backends
starts (or finds) the server of the new configuration, never one started with
other settings, and nothing buildpolicy runs ever talks to a server on
sccache's default port 4226, which may belong to someone else. Where the cache
dir's path is too long for a socket name (108 bytes), a private 0700 directory
under ``$XDG_RUNTIME_DIR`` or the temporary directory holds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux
UDS_VAR = "SCCACHE_SERVER_UDS"
COMMAND_TIMEOUT = 20.0  # --show-stats may start a server, whose storage check takes a moment


def socket_path(cache_dir, identity: str, environ: Mapping[str, str]) -> Path:
    """Where the server of configuration ``identity`` listens (the directory is created, 0700)."""
    name = f"{identity}.sock"
    candidates = [Path(cache_dir) / "sccache" / "srv"]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    for base in (environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if base and os.path.isabs(base):
            candidates.append(Path(base) / f"buildpolicy-sccache-{uid}")
    for index, directory in enumerate(candidates):
        if index:
            # A directory shared by every cache dir of this user: the cache dir is part of the name.
            import hashlib

            name = hashlib.sha256(f"{cache_dir}\x00{identity}".encode()).hexdigest()[:16] + ".sock"
        path = directory / name
        if len(str(path)) > SOCKET_PATH_MAX:
            continue
        if _private_dir(directory):
            return path
    raise OSError("no private directory with a short enough path for sccache's server socket")


def _private_dir(directory: Path) -> bool:
    """Create ``directory`` (0700) if needed; True when it is a directory only this user can write to."""
    from buildpolicy.filestate import unsafe_directory

    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    return directory.is_dir() and not directory.is_symlink() and unsafe_directory(directory) is None


def _run(sccache: str, args: list[str], env: Mapping[str, str], timeout: float = COMMAND_TIMEOUT):
    if not env.get(UDS_VAR):
        # A client without a private socket would talk to the default port: never.
        raise ValueError(f"{UDS_VAR} is not set: refusing to talk to sccache's default server")
    env = {k: v for k, v in env.items() if k != "SCCACHE_SERVER_PORT"}
    return subprocess.run([sccache, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          errors="replace", timeout=timeout, check=False)


def running(env: Mapping[str, str]) -> bool:
    """Whether a server listens on the configuration's socket (a connect, no sccache started)."""
    import socket

    path = env.get(UDS_VAR)
    if not path or not os.path.exists(path):
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(0.5)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def ensure_running(sccache: str, env: Mapping[str, str]) -> bool:
    """Start the configuration's server unless one listens (``exec``, before cargo); True when started.

    Under a lock beside the socket: cargo's first compilations (or two concurrent
    execs) would otherwise each start a server on the same path, and the one whose
    socket file the other replaced runs on, unreachable, until its idle timeout.
    """
    from buildpolicy.run.locks import locked

    if running(env):
        return False
    with locked(Path(env[UDS_VAR] + ".lock"), timeout=COMMAND_TIMEOUT) as held:
        if running(env) or not held:
            return False
        proc = _run(sccache, ["--start-server"], env, timeout=COMMAND_TIMEOUT + 40)  # sccache's storage check
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            raise OSError(f"sccache --start-server failed: {lines[-1] if lines else proc.returncode}")
    return True


def show_stats(sccache: str, env: Mapping[str, str]) -> dict:
    """``sccache --show-stats --stats-format json`` against the private server (started if needed)."""
    proc = _run(sccache, ["--show-stats", "--stats-format", "json"], env)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise OSError(f"sccache --show-stats failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise OSError("sccache --show-stats printed no JSON") from None
    return data if isinstance(data, dict) else {}


def zero_stats(sccache: str, env: Mapping[str, str]) -> None:
    """``sccache --zero-stats`` on the private server."""
    proc = _run(sccache, ["--zero-stats"], env)
    if proc.returncode != 0:
        raise OSError(f"sccache --zero-stats failed: {proc.stderr.strip() or proc.returncode}")


def stop(sccache: str, env: Mapping[str, str]) -> bool:
    """Stop the private server, if one is running (never the default-port one)."""
    if not running(env):
        return False
    proc = _run(sccache, ["--stop-server"], env)
    return proc.returncode == 0


def counts(stats: Mapping) -> dict[str, int]:
    """Hits, misses, cacheable requests and errors from sccache's JSON stats (all languages summed)."""
    inner = stats.get("stats", stats) if isinstance(stats, Mapping) else {}

    def total(name: str) -> int:
        value = inner.get(name, 0) if isinstance(inner, Mapping) else 0
        if isinstance(value, Mapping):
            value = value.get("counts", value)
            return sum(v for v in value.values() if isinstance(v, int)) if isinstance(value, Mapping) else 0
        return value if isinstance(value, int) else 0

    return {
        "compile_requests": total("compile_requests"),
        "requests_executed": total("requests_executed"),
        "cache_hits": total("cache_hits"),
        "cache_misses": total("cache_misses"),
        "cache_errors": total("cache_errors"),
        "cache_write_errors": total("cache_write_errors"),
        "non_cacheable_compilations": total("non_cacheable_compilations"),
        "dist_compiles": total("dist_compiles"),
    }

"""sccache-dist (DESIGN §12): the scheduler knob, its probe, and the client's generated ``SCCACHE_CONF``.

Knobs: ``sccache_dist_scheduler``, the scheduler's URL (``http://host[:port]``
or ``https://…``, sccache-dist's port 10600 by default), and
``sccache_dist_token``, the client token as a reference (``env:VAR`` or
``file:/ABS/PATH``), never the token itself. Without a token the client sends
sccache's own default, which only a scheduler configured with
``DANGEROUSLY_INSECURE`` client auth accepts.

The scheduler is up when its status endpoint (``GET /api/v1/scheduler/status``)
answers with at least one build server (the body is three little-endian u64:
servers, CPUs, jobs in progress); a scheduler without servers would only make
every compilation wait for nothing. Probes go through ``reach`` with the
remote timeouts and are recorded like the backends' (``env`` reads the record).

sccache has no variables for its ``[dist]`` section, so the client gets a file:
``<cache dir>/sccache/conf/<hash>.toml`` (0600, in a 0700 directory: it holds
the token), named by a hash of its content. Its path is part of the server
configuration's identity, so a change of scheduler, token or packaged
toolchains starts another private server (sccache reads the file only when
its server starts).
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from buildpolicy.run.cache.backends import (BackendError, netloc, parse_problem, reference_problem,
                                            resolve_reference, split_url)

DEFAULT_PORT = 10600
STATUS_PATH = "/api/v1/scheduler/status"
FORMS = "http://host[:port] or https://host[:port] (sccache-dist's scheduler; port 10600 by default)"


@dataclass(frozen=True)
class Scheduler:
    """A parsed ``sccache_dist_scheduler`` value."""

    url: str  # scheme://host:port, as the client's scheduler_url
    host: str
    port: int
    tls: bool

    @property
    def probe_key(self) -> str:
        """The identity its probes are recorded under."""
        return f"dist:{self.url}"


def check_scheduler(value: str) -> str | None:
    """Knob check for ``sccache_dist_scheduler``: None, or what is wrong and the allowed forms."""
    return parse_problem(parse_scheduler, value, FORMS)


def check_token(value: str) -> str | None:
    """Knob check for ``sccache_dist_token``: None, or why it is not a reference."""
    if not value:
        return None
    try:
        reference_problem(value, "sccache_dist_token")
    except BackendError as exc:
        return str(exc)
    return None


def parse_scheduler(value: str | None) -> Scheduler | None:
    """The scheduler ``value`` names, or None when it is empty (no sccache-dist)."""
    text = (value or "").strip()
    if not text:
        return None
    url = split_url(text)
    if url.scheme not in ("http", "https"):
        raise BackendError(f"{text!r}: the scheduler is an http:// or https:// URL")
    if url.username is not None or url.password is not None:
        raise BackendError(f"{url.scheme}://…@{url.hostname}: no credentials in the URL; "
                           "give the token as sccache_dist_token = env:VAR or file:/ABS/PATH")
    host = url.hostname
    if not host or host.startswith("-"):
        raise BackendError(f"{text!r} names no usable host")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise BackendError(f"{text!r}: the scheduler URL has no path, query or fragment")
    port = url.port or DEFAULT_PORT
    return Scheduler(f"{url.scheme}://{netloc(host, port)}", host, port, url.scheme == "https")


def probe(scheduler: Scheduler, token: str | None, timeout: float):
    """Ask the scheduler's status endpoint, within ``timeout`` seconds; a ``reach.Reach``, never raises."""
    import http.client
    import socket

    from buildpolicy.run.cache.reach import Reach

    started = time.monotonic()
    now = time.time()

    def down(reason: str) -> Reach:
        return Reach(False, reason, time.monotonic() - started, now)

    kind = http.client.HTTPSConnection if scheduler.tls else http.client.HTTPConnection
    conn = kind(scheduler.host, scheduler.port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", STATUS_PATH, headers=headers)
        conn.sock.settimeout(max(0.01, started + timeout - time.monotonic()))
        response = conn.getresponse()
        body = response.read(4096)
    except ConnectionRefusedError:
        return down(f"{scheduler.host}:{scheduler.port} refused the connection")
    except (TimeoutError, socket.timeout):
        return down(f"no answer from {scheduler.host}:{scheduler.port} within {timeout:g}s")
    except (OSError, http.client.HTTPException) as exc:
        return down(f"{scheduler.host}:{scheduler.port}: {getattr(exc, 'strerror', None) or exc}")
    finally:
        conn.close()
    if response.status != 200:
        return down(f"GET {STATUS_PATH} answered HTTP {response.status}")
    if len(body) != 24:
        return down(f"GET {STATUS_PATH} answered {len(body)} bytes, not sccache-dist's status")
    servers, cpus, jobs = struct.unpack("<QQQ", body)
    if servers == 0:
        return down("the scheduler answers but has no build server")
    return Reach(True, f"scheduler status: {servers} build server(s), {cpus} CPUs, {jobs} job(s) in progress",
                 time.monotonic() - started, now)


def token_of(reference: str | None, environ: Mapping[str, str]) -> str | None:
    """The client token a ``sccache_dist_token`` reference names (None without one); raises BackendError."""
    return resolve_reference(reference, environ) if reference else None


def _toml_string(value: str) -> str:
    # JSON's escapes are TOML basic-string escapes.
    return json.dumps(value)


def conf_text(scheduler: Scheduler, token: str | None, dist_cache: Path,
              toolchains: Sequence[tuple[str, str]]) -> str:
    """The client's configuration: ``[dist]`` with the scheduler, its cache, the token and one
    ``[[dist.toolchains]]`` ``path_override`` per packaged toolchain ``(rustc, archive)``."""
    lines = ["# Written by buildpolicy (sccache_dist_scheduler): read by sccache when its server starts.",
             "[dist]", f"scheduler_url = {_toml_string(scheduler.url)}", f"cache_dir = {_toml_string(str(dist_cache))}"]
    if token is not None:
        lines += ["", "[dist.auth]", 'type = "token"', f"token = {_toml_string(token)}"]
    for compiler, archive in sorted(toolchains):
        lines += ["", "[[dist.toolchains]]", 'type = "path_override"', f"compiler_executable = {_toml_string(compiler)}",
                  f"archive = {_toml_string(archive)}", f"archive_compiler_executable = {_toml_string(compiler)}"]
    return "\n".join(lines) + "\n"


def write_conf(cache_dir, text: str) -> Path:
    """Write ``text`` (0600) as ``<cache dir>/sccache/conf/<hash>.toml`` unless it is there; return its path.

    Raises OSError when the directory is not private to this user.
    """
    from buildpolicy.filestate import atomic_write, unsafe_directory

    directory = Path(cache_dir) / "sccache" / "conf"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    problem = unsafe_directory(directory)
    if problem:
        raise OSError(problem)
    directory.chmod(0o700)  # it holds the token
    path = directory / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.toml"
    try:
        fresh = (path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o777 == 0o600
                 and path.read_text(encoding="utf-8") == text)
    except (OSError, UnicodeDecodeError):
        fresh = False
    if not fresh:
        atomic_write(path, text.encode(), mode=0o600)
    return path


def dist_cache_dir(cache_dir) -> Path:
    """The sccache client's own dist cache (toolchains it packs itself), shared by every configuration."""
    return Path(cache_dir) / "sccache" / "dist-client"

"""Is a shared backend up? Ask it in its own protocol, and remember the answer.

A TCP connect is not enough (a proxy can accept connections for a host that is
down), so each backend is asked something only it answers: Redis ``PING`` →
``+PONG`` (``AUTH`` first when a password is configured: ``-NOAUTH`` is a
"down" for sccache too), memcached ``version`` → ``VERSION …``, an HTTP
``HEAD`` of the WebDAV collection or S3 bucket (any HTTP status line is an
answer: 401/403/404 say the server is there; credentials are sccache's
business). ``gha`` is up when the runner's variables are present.

Timeouts and memory follow the remote hosts (DESIGN §6): ``remote_tcp_timeout``
for the whole exchange, ``remote_recovery_timeout`` while a failure less than
``remote_down_ttl`` old is recorded. Results go to
``$XDG_STATE_HOME/buildpolicy/sccache-backends.json`` (merged under a short lock
and written atomically with the state-file helpers the remote down cache uses;
a corrupt file reads as empty). ``env`` and ``explain`` only read that record:
a prompt never waits on the network.
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from buildpolicy.run.cache.backends import Backend, BackendError, resolve_reference

RECORDS = "sccache-backends.json"
RECORDS_LOCK = "sccache-backends.lock"


class ProbeFailed(Exception):
    """The backend did not answer as it should; the message says how."""


@dataclass(frozen=True)
class Reach:
    """One probe: up or not, why, how long it took (seconds), and when (epoch)."""

    ok: bool
    reason: str
    seconds: float
    at: float


def _connect(address, timeout: float) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            raise ProbeFailed(f"{address}: {exc.strerror or exc}") from None
        return sock
    host, port = address
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except (TimeoutError, socket.timeout):
        raise ProbeFailed(f"no answer from {host}:{port} within {timeout:g}s") from None
    except ConnectionRefusedError:
        raise ProbeFailed(f"{host}:{port} refused the connection") from None
    except OSError as exc:
        raise ProbeFailed(f"{host}:{port}: {exc.strerror or exc}") from None


def _exchange(address, request: bytes, timeout: float, deadline: float) -> bytes:
    """Send ``request``, return the first line of the answer (all within ``deadline``)."""
    sock = _connect(address, timeout)
    try:
        sock.sendall(request)
        data = b""
        while b"\n" not in data and len(data) < 4096:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProbeFailed(f"no answer within {timeout:g}s")
            sock.settimeout(remaining)
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        if not data:
            raise ProbeFailed("the connection closed without an answer")
        return data.split(b"\n", 1)[0].rstrip(b"\r")
    except (TimeoutError, socket.timeout):
        raise ProbeFailed(f"no answer within {timeout:g}s") from None
    except OSError as exc:
        raise ProbeFailed(f"{exc.strerror or exc}") from None
    finally:
        sock.close()


def _resp(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        raw = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def _redis(backend: Backend, environ: Mapping[str, str], timeout: float, deadline: float) -> str:
    variables = dict(backend.variables)
    request = b""
    secrets = dict(backend.secrets)
    if "SCCACHE_REDIS_PASSWORD" in secrets:
        password = resolve_reference(secrets["SCCACHE_REDIS_PASSWORD"], environ)
        user = variables.get("SCCACHE_REDIS_USERNAME")
        request += _resp("AUTH", *([user] if user else []), password)
    if variables.get("SCCACHE_REDIS_ENDPOINT", "").startswith("rediss://"):
        return _tls_redis(backend, request, timeout, deadline)
    authenticating = bool(request)
    request += _resp("PING")
    sock_answer = _exchange(backend.address, request, timeout, deadline)
    if authenticating:  # the first answer is AUTH's
        if not sock_answer.startswith(b"+OK"):
            raise ProbeFailed(f"AUTH refused: {sock_answer[:80].decode('ascii', 'replace')}")
        return "AUTH ok, PING sent"
    if sock_answer != b"+PONG":
        raise ProbeFailed(f"PING answered {sock_answer[:80].decode('ascii', 'replace')!r}, not +PONG")
    return "PING -> PONG"


def _tls_redis(backend: Backend, auth: bytes, timeout: float, deadline: float) -> str:
    import ssl

    host, _port = backend.address
    raw = _connect(backend.address, timeout)
    try:
        with ssl.create_default_context().wrap_socket(raw, server_hostname=host) as sock:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.sendall(auth + _resp("PING"))
            data = sock.recv(4096)
    except (TimeoutError, socket.timeout):
        raise ProbeFailed(f"no TLS answer within {timeout:g}s") from None
    except (OSError, ssl.SSLError) as exc:
        raise ProbeFailed(f"TLS: {exc}") from None
    finally:
        raw.close()
    if b"+PONG" not in data and not data.startswith(b"+OK"):
        raise ProbeFailed(f"PING answered {data[:80].decode('ascii', 'replace')!r}")
    return "TLS PING -> PONG"


def _memcached(backend: Backend, timeout: float, deadline: float) -> str:
    answer = _exchange(backend.address, b"version\r\n", timeout, deadline)
    if not answer.startswith(b"VERSION "):
        raise ProbeFailed(f"version answered {answer[:80].decode('ascii', 'replace')!r}")
    return answer.decode("ascii", "replace")


def _http(url: str, timeout: float, deadline: float) -> str:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("HEAD", parts.path or "/")
        conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        response = conn.getresponse()
    except (TimeoutError, socket.timeout):
        raise ProbeFailed(f"no HTTP answer from {parts.netloc} within {timeout:g}s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ProbeFailed(f"{parts.netloc}: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        conn.close()
    if response.status >= 500:
        raise ProbeFailed(f"HEAD {url} answered HTTP {response.status}")
    return f"HEAD -> HTTP {response.status}"


def probe(backend: Backend, environ: Mapping[str, str], timeout: float) -> Reach:
    """Ask ``backend`` whether it is up, within ``timeout`` seconds; never raises."""
    started = time.monotonic()
    deadline = started + timeout
    now = time.time()
    try:
        if backend.kind == "redis":
            reason = _redis(backend, environ, timeout, deadline)
        elif backend.kind == "memcached":
            reason = _memcached(backend, timeout, deadline)
        elif backend.kind in ("webdav", "s3"):
            reason = _http(str(backend.address), timeout, deadline)
        elif backend.kind == "gha":
            reason = gha_problem(environ)
            if reason:
                raise ProbeFailed(reason)
            reason = "GitHub Actions cache variables present"
        else:
            return Reach(True, "local disk", 0.0, now)
    except (ProbeFailed, BackendError) as exc:
        return Reach(False, str(exc), time.monotonic() - started, now)
    except Exception as exc:  # noqa: BLE001 - a probe bug must not take the run down
        return Reach(False, f"probe error: {type(exc).__name__}: {exc}", time.monotonic() - started, now)
    return Reach(True, reason, time.monotonic() - started, now)


def gha_problem(environ: Mapping[str, str]) -> str | None:
    """Why the GitHub Actions cache cannot be used here, or None."""
    if not (environ.get("ACTIONS_CACHE_URL") or environ.get("ACTIONS_RESULTS_URL")):
        return "not in GitHub Actions: ACTIONS_CACHE_URL/ACTIONS_RESULTS_URL is not set"
    if not environ.get("ACTIONS_RUNTIME_TOKEN"):
        return "ACTIONS_RUNTIME_TOKEN is not set (expose it with actions/github-script or the sccache action)"
    return None


class Records:
    """The recorded probe results, one per backend (``Backend.probe_key``)."""

    def __init__(self, state_dir):
        self.path = Path(state_dir) / RECORDS
        self.lock = Path(state_dir) / RECORDS_LOCK

    def load(self) -> dict[str, Reach]:
        """Every valid entry; a missing, unsafe or corrupt file reads as empty."""
        from buildpolicy.filestate import load_state_json

        data = load_state_json(self.path)
        entries = data.get("backends") if isinstance(data, dict) else None
        result = {}
        for key, entry in (entries.items() if isinstance(entries, dict) else ()):
            if not isinstance(entry, dict):
                continue
            ok, reason, seconds, at = (entry.get(k) for k in ("ok", "reason", "seconds", "at"))
            if (isinstance(ok, bool) and isinstance(reason, str) and _number(seconds) and _number(at)):
                result[str(key)] = Reach(ok, reason, float(seconds), float(at))
        return result

    def get(self, key: str) -> Reach | None:
        """The last recorded result for ``key``."""
        return self.load().get(key)

    def put(self, key: str, reach: Reach) -> bool:
        """Record ``reach`` for ``key``, keeping what other shells recorded; False when it could not."""
        from buildpolicy.filestate import write_state
        from buildpolicy.run.locks import locked

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        with locked(self.lock, timeout=2.0) as held:
            if not held:
                return False
            current = self.load()
            current[key] = reach
            payload = {"version": 1, "backends": {k: {"ok": r.ok, "reason": r.reason, "seconds": round(r.seconds, 4),
                                                      "at": r.at} for k, r in sorted(current.items())}}
            try:
                write_state(self.path, json.dumps(payload, indent=1).encode())
            except OSError:
                return False
            _mark(self.path.parent, key, not reach.ok)
        return True


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def probe_and_record(backend: Backend, environ: Mapping[str, str], state_dir, *, tcp_timeout: float,
                     recovery_timeout: float, down_ttl: float) -> Reach:
    """Probe with the remote timeouts (the shorter one while a recent failure is recorded) and record."""
    return ask_and_record(backend.probe_key, lambda timeout: probe(backend, environ, timeout), state_dir,
                          tcp_timeout=tcp_timeout, recovery_timeout=recovery_timeout, down_ttl=down_ttl)


def ask_and_record(key: str, ask: Callable[[float], Reach], state_dir, *, tcp_timeout: float,
                   recovery_timeout: float, down_ttl: float) -> Reach:
    """Run the probe ``ask(timeout)`` of ``key`` with the remote timeouts and record its answer."""
    records = Records(state_dir)
    last = records.get(key)
    timeout = tcp_timeout
    if last is not None and not last.ok and time.time() - last.at < down_ttl:
        timeout = recovery_timeout
    reach = ask(timeout)
    records.put(key, reach)
    return reach


def down_marker(state_dir, key: str) -> Path:
    """A file that exists while ``key``'s last recorded probe says down.

    The key wrapper tests it before every compilation (one ``stat``), so a build
    whose backend dies mid-way sends its remaining compilations to the local
    server as soon as a probe (``exec``'s watch, a prompt's refresh) notices.
    """
    return Path(state_dir) / "sccache-down" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _mark(state_dir, key: str, down: bool) -> None:
    marker = down_marker(state_dir, key)
    try:
        if down:
            marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
    except OSError:
        pass  # the record still says it; only the switch of a running build is lost

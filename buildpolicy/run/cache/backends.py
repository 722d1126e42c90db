"""The ``sccache_backend`` knob (DESIGN §12): parse it, and map it to sccache 0.16's variables.

Standard library only: the knob check runs while knobs are resolved.

Forms (the scheme names the backend; the status is ``enabled:<backend>``):

- ``local``: sccache's own disk cache; the ``sccache`` decision is unchanged.
- ``redis://[user@]host[:port][/db]``, ``rediss://…`` (TLS), and a unix socket as
  ``redis+unix:///ABS/PATH[?db=N]`` or sccache's own spelling
  ``unix://localhost/ABS/PATH`` (the only one sccache 0.16 accepts: it is what
  ``SCCACHE_REDIS_ENDPOINT`` gets).
- ``memcached://host[:port]`` (``SCCACHE_MEMCACHED_ENDPOINT=tcp://host:port``).
- ``s3://bucket[/prefix]?endpoint=URL&region=R`` (``SCCACHE_BUCKET``,
  ``SCCACHE_S3_KEY_PREFIX``, ``SCCACHE_ENDPOINT``, ``SCCACHE_REGION``;
  ``SCCACHE_S3_USE_SSL=false`` for an ``http://`` endpoint). Credentials are
  sccache's own: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or
  ``~/.aws``, from the caller's environment.
- ``webdav+http://host/path``, ``webdav+https://…`` (``SCCACHE_WEBDAV_ENDPOINT``
  without the trailing ``/`` sccache would turn into ``//key``).
- ``gha``: the GitHub Actions cache (``SCCACHE_GHA_ENABLED=on``); up when the
  runner's ``ACTIONS_CACHE_URL``/``ACTIONS_RESULTS_URL`` and
  ``ACTIONS_RUNTIME_TOKEN`` are in the environment.

Query parameters: ``password`` (redis, webdav), ``token`` (webdav), each a
*reference*, ``env:VAR`` or ``file:/ABS/PATH``, never the secret itself;
``username`` (webdav), ``prefix`` (redis, s3, webdav key prefix), ``expiration``
(redis, seconds), ``mode=read-only`` (redis, s3, webdav: this machine reads
the team's cache but never writes to it, e.g. developer laptops beside CI).

A password in the URL (``redis://:secret@host``) is refused wherever the value
comes from: knob values are shown by ``explain``, written to the action log
and, from a project file, committed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

BACKENDS = ("redis", "memcached", "s3", "webdav", "gha")
FORMS = ("local, redis://host:port[/db], rediss://host:port[/db], redis+unix:///ABS/PATH.sock, "
         "unix://localhost/ABS/PATH.sock, memcached://host:port, s3://bucket[/prefix]?endpoint=URL&region=R, "
         "webdav+http(s)://host/path, gha; credentials as ?password=env:VAR or ?password=file:/ABS/PATH")
DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "memcached": 11211, "http": 80, "https": 443}
_PARAMS = {
    "redis": {"password", "prefix", "expiration", "mode", "db"},
    "memcached": {"prefix", "expiration"},
    "s3": {"endpoint", "region", "mode", "prefix", "no_credentials"},
    "webdav": {"username", "password", "token", "prefix", "mode"},
    "gha": {"version", "mode"},
}
_SECRET_PARAMS = ("password", "token")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,62}")
# Every variable a backend may set: a shared backend unsets the others the caller
# may carry, so sccache sees exactly one backend.
BACKEND_VARIABLES = (
    "SCCACHE_REDIS_ENDPOINT", "SCCACHE_REDIS_CLUSTER_ENDPOINTS", "SCCACHE_REDIS_DB", "SCCACHE_REDIS_USERNAME",
    "SCCACHE_REDIS_PASSWORD", "SCCACHE_REDIS_KEY_PREFIX", "SCCACHE_REDIS_EXPIRATION", "SCCACHE_REDIS_TTL",
    "SCCACHE_REDIS_RW_MODE", "SCCACHE_MEMCACHED_ENDPOINT", "SCCACHE_MEMCACHED_KEY_PREFIX",
    "SCCACHE_MEMCACHED_EXPIRATION", "SCCACHE_BUCKET", "SCCACHE_ENDPOINT", "SCCACHE_REGION", "SCCACHE_S3_KEY_PREFIX",
    "SCCACHE_S3_USE_SSL", "SCCACHE_S3_NO_CREDENTIALS", "SCCACHE_S3_RW_MODE", "SCCACHE_WEBDAV_ENDPOINT",
    "SCCACHE_WEBDAV_USERNAME", "SCCACHE_WEBDAV_PASSWORD", "SCCACHE_WEBDAV_TOKEN", "SCCACHE_WEBDAV_KEY_PREFIX",
    "SCCACHE_WEBDAV_RW_MODE", "SCCACHE_GHA_ENABLED", "SCCACHE_GHA_VERSION", "SCCACHE_GHA_RW_MODE",
    "SCCACHE_MULTILEVEL_CHAIN", "SCCACHE_GCS_BUCKET", "SCCACHE_AZURE_CONNECTION_STRING", "SCCACHE_OSS_BUCKET",
    "SCCACHE_COS_BUCKET", "SCCACHE_CONF",
)


class BackendError(ValueError):
    """A ``sccache_backend`` value that is not one of the forms, or a reference that cannot be read."""


@dataclass(frozen=True)
class Backend:
    """A parsed ``sccache_backend`` value.

    ``kind`` is ``local`` or one of :data:`BACKENDS`; ``address`` is what the
    probe talks to (``(host, port)``, a unix socket path, or an URL);
    ``variables`` are sccache's, with ``secrets`` naming the ones whose value is
    still a reference (``env:VAR``/``file:PATH``) to resolve at the last moment.
    """

    kind: str
    text: str
    address: object = None
    variables: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()  # (variable, reference)
    display: str = ""  # the value without references' targets, for reasons
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def shared(self) -> bool:
        """Whether another machine may read what this one writes (everything but ``local``)."""
        return self.kind != "local"

    @property
    def probe_key(self) -> str:
        """The identity probes are recorded under: what the probe talks to, not the credentials."""
        return f"{self.kind}:{self.address}"


def check(value: str) -> str | None:
    """Knob check for ``sccache_backend``: None, or what is wrong and the allowed forms."""
    return parse_problem(parse, value, FORMS)


def parse_problem(parser, value: str, forms: str) -> str | None:
    """None when ``parser`` accepts ``value``, else the allowed ``forms`` and what is wrong."""
    try:
        parser(value)
    except BackendError as exc:
        return f"{forms}; {exc}"
    return None


def parse(value: str) -> Backend:
    """Parse a ``sccache_backend`` value; raise :class:`BackendError` saying what is wrong."""
    text = value.strip()
    if text in ("", "local"):
        return Backend("local", "local", display="local")
    if text == "gha" or text.startswith("gha?"):
        params = _params(text.partition("?")[2], "gha")
        variables = [("SCCACHE_GHA_ENABLED", "on")]
        if "version" in params:
            variables.append(("SCCACHE_GHA_VERSION", params["version"]))
        variables += _rw_mode("GHA", params)
        return Backend("gha", text, "github-actions", tuple(variables), display=text, params=params)
    url = split_url(text)
    scheme = url.scheme.lower()
    if url.password is not None:
        raise BackendError(f"{_redact(url)}: a password in the URL is a literal secret (shown by `explain`, logged, "
                           "committed when in a project file); give ?password=env:VAR or ?password=file:/ABS/PATH")
    if scheme in ("redis", "rediss", "redis+unix", "unix"):
        return _redis(text, url, scheme)
    if scheme == "memcached":
        host, port = _host_port(text, url, "memcached")
        params = _params(url.query, "memcached")
        if url.path not in ("", "/"):
            raise BackendError(f"{text!r}: memcached takes no path")
        variables = [("SCCACHE_MEMCACHED_ENDPOINT", f"tcp://{netloc(host, port)}")]
        variables += _optional("SCCACHE_MEMCACHED_KEY_PREFIX", params.get("prefix"))
        variables += _optional("SCCACHE_MEMCACHED_EXPIRATION", _seconds(params.get("expiration"), text))
        return Backend("memcached", text, (host, port), tuple(variables), display=text, params=params)
    if scheme == "s3":
        return _s3(text, url)
    if scheme in ("webdav+http", "webdav+https"):
        return _webdav(text, url, scheme)
    raise BackendError(f"unknown backend {text!r}")


def split_url(text: str):
    """``urlsplit(text)`` of a backend or scheduler URL, its port checked; BackendError for
    whitespace (a NUL too) or what is not a URL."""
    if any(c.isspace() for c in text) or "\x00" in text:
        raise BackendError(f"{text!r} contains whitespace")
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise BackendError(f"{text!r} is not a URL: {exc}") from None
    return url


def _redact(url) -> str:
    host = url.hostname or ""
    user = f"{url.username}:***@" if url.username else ":***@"
    return f"{url.scheme}://{user}{host}{f':{url.port}' if url.port else ''}{url.path}"


def _params(query: str, kind: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in _PARAMS[kind]:
            raise BackendError(f"{kind} takes the parameters {', '.join(sorted(_PARAMS[kind]))}, not {key!r}")
        if key in params:
            raise BackendError(f"parameter {key!r} is given twice")
        if key in _SECRET_PARAMS:
            reference_problem(value, key)
        params[key] = value
    if "mode" in params and params["mode"] not in ("read-only", "read-write"):
        raise BackendError(f"mode is read-only or read-write, not {params['mode']!r}")
    return params


def reference_problem(value: str, what: str) -> None:
    """Raise unless ``value`` is an ``env:VAR`` or ``file:/ABS/PATH`` reference (never a literal secret)."""
    kind, sep, target = value.partition(":")
    if sep and kind == "env" and _ENV_NAME.fullmatch(target):
        return
    if sep and kind == "file" and os.path.isabs(target):
        return
    raise BackendError(f"{what} must be a reference, env:VAR or file:/ABS/PATH, never the secret itself "
                       f"(got a value of {len(value)} characters)")


def resolve_reference(reference: str, environ: Mapping[str, str]) -> str:
    """The secret a reference names: ``env:VAR`` from ``environ``, ``file:PATH`` the file's first line.

    Raises :class:`BackendError` when the variable is unset or the file cannot be
    read; the secret never appears in the message.
    """
    kind, _, target = reference.partition(":")
    if kind == "env":
        secret = environ.get(target)
        if not secret:
            raise BackendError(f"{reference}: ${target} is not set")
        return secret
    from buildpolicy.filestate import read_bounded

    try:
        data = read_bounded(target, 64 * 1024)
    except OSError as exc:
        raise BackendError(f"{reference}: cannot read {target}: {exc.strerror or exc}") from None
    lines = data.decode("utf-8", "replace").splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise BackendError(f"{reference}: {target} is empty")
    return secret


def _optional(name: str, value) -> list[tuple[str, str]]:
    return [(name, str(value))] if value not in (None, "") else []


def _seconds(value, text: str) -> str | None:
    if value in (None, ""):
        return None
    if not value.isdigit() or int(value) <= 0:
        raise BackendError(f"{text!r}: expiration is a positive number of seconds, not {value!r}")
    return value


def _rw_mode(prefix: str, params: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(f"SCCACHE_{prefix}_RW_MODE", "READ_ONLY")] if params.get("mode") == "read-only" else []


def netloc(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_port(text: str, url, scheme: str) -> tuple[str, int]:
    host = url.hostname
    if not host:
        raise BackendError(f"{text!r} names no host")
    if host.startswith("-"):
        raise BackendError(f"{text!r}: a host name may not start with '-'")
    return host, url.port or DEFAULT_PORTS[scheme]


def _redis(text: str, url, scheme: str) -> Backend:
    params = _params(url.query, "redis")
    variables: list[tuple[str, str]] = []
    if scheme in ("redis+unix", "unix"):
        path = unquote(url.path)
        if scheme == "unix" and url.netloc not in ("", "localhost"):
            raise BackendError(f"{text!r}: a unix socket is unix://localhost/ABS/PATH")
        if scheme == "redis+unix" and url.netloc:
            raise BackendError(f"{text!r}: a unix socket is redis+unix:///ABS/PATH (three slashes)")
        if not os.path.isabs(path) or path.endswith("/"):
            raise BackendError(f"{text!r}: the socket must be an absolute path")
        address: object = path
        endpoint = f"unix://localhost{path}"
        db = params.get("db")
        if url.username:
            variables.append(("SCCACHE_REDIS_USERNAME", unquote(url.username)))
    else:
        if "db" in params:
            raise BackendError(f"{text!r}: give the database as the path (redis://host:port/DB)")
        host, port = _host_port(text, url, scheme)
        address = (host, port)
        endpoint = f"{scheme}://{netloc(host, port)}"
        db = url.path.strip("/") or None
        if url.username:
            variables.append(("SCCACHE_REDIS_USERNAME", unquote(url.username)))
    if db is not None and not db.isdigit():
        raise BackendError(f"{text!r}: the database is a number, not {db!r}")
    variables.append(("SCCACHE_REDIS_ENDPOINT", endpoint))
    variables += _optional("SCCACHE_REDIS_DB", db)
    variables += _optional("SCCACHE_REDIS_KEY_PREFIX", params.get("prefix"))
    variables += _optional("SCCACHE_REDIS_EXPIRATION", _seconds(params.get("expiration"), text))
    variables += _rw_mode("REDIS", params)
    secrets = (("SCCACHE_REDIS_PASSWORD", params["password"]),) if "password" in params else ()
    kind = "redis"
    return Backend(kind, text, address, tuple(sorted(variables)), secrets, text, params)


def _s3(text: str, url) -> Backend:
    bucket = url.hostname or ""
    if not _BUCKET.fullmatch(bucket):
        raise BackendError(f"{text!r}: {bucket!r} is not an S3 bucket name")
    params = _params(url.query, "s3")
    prefix = url.path.strip("/") or params.get("prefix")
    variables = [("SCCACHE_BUCKET", bucket)]
    variables += _optional("SCCACHE_S3_KEY_PREFIX", prefix)
    endpoint = params.get("endpoint")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"{text!r}: endpoint is an http:// or https:// URL, not {endpoint!r}")
        if parts.password is not None:
            raise BackendError(f"{text!r}: the endpoint carries a password; S3 credentials come from "
                               "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws")
        variables.append(("SCCACHE_ENDPOINT", endpoint.rstrip("/")))
        if parts.scheme == "http":
            variables.append(("SCCACHE_S3_USE_SSL", "false"))
        probe_url = f"{endpoint.rstrip('/')}/{bucket}"
    else:
        region = params.get("region") or "us-east-1"
        probe_url = f"https://{bucket}.s3.{region}.amazonaws.com/"
    variables += _optional("SCCACHE_REGION", params.get("region"))
    if params.get("no_credentials") in ("1", "true", "yes", "on"):
        variables.append(("SCCACHE_S3_NO_CREDENTIALS", "true"))
    variables += _rw_mode("S3", params)
    return Backend("s3", text, probe_url, tuple(sorted(variables)), display=text, params=params)


def _webdav(text: str, url, scheme: str) -> Backend:
    host, port = _host_port(text, url, scheme.split("+")[1])
    params = _params(url.query, "webdav")
    if url.username:
        raise BackendError(f"{text!r}: give the user as ?username=NAME")
    # sccache joins "/" + key: a trailing slash would make "//key", which servers refuse.
    path = url.path.rstrip("/")
    endpoint = f"{scheme.split('+')[1]}://{netloc(host, port)}{path}"
    variables = [("SCCACHE_WEBDAV_ENDPOINT", endpoint)]
    variables += _optional("SCCACHE_WEBDAV_USERNAME", params.get("username"))
    variables += _optional("SCCACHE_WEBDAV_KEY_PREFIX", params.get("prefix"))
    variables += _rw_mode("WEBDAV", params)
    secrets = tuple((f"SCCACHE_WEBDAV_{key.upper()}", params[key]) for key in _SECRET_PARAMS if key in params)
    return Backend("webdav", text, endpoint, tuple(sorted(variables)), secrets, text, params)


def identity(backend: Backend, sccache: str, extra: Mapping[str, str] = {}) -> str:  # noqa: B006 - read only
    """A short hash naming one server configuration: the backend's variables, the secrets'
    *references*, sccache's path and any other settings the server reads at start."""
    parts = [backend.kind, sccache, *(f"{k}={v}" for k, v in backend.variables),
             *(f"{k}=ref:{v}" for k, v in backend.secrets), *(f"{k}={v}" for k, v in sorted(extra.items()))]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]

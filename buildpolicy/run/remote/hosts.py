"""Build-host settings from the knobs, host-name checks, and ``ssh -G`` resolution."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from buildpolicy.record import frozen

HOST_VAR = "BUILDPOLICY_REMOTE_HOST"
# Commands that build or run the project: these are worth shipping to a build host.
REMOTE_COMMANDS = frozenset({"build", "check", "test", "bench", "run", "doc", "clippy", "rustc", "rustdoc"})
RESOLVE_TIMEOUT = 3.0  # `ssh -G` reads config files only

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REMOTE_DIR = re.compile(r"[A-Za-z0-9_.+/-]+")
HOST_RULE = "host names of letters, digits, '.', '-', '_' (optionally user@), or IP addresses; none may start with '-'"


# ------------------------------------------------------------------ checks


def host_problem(host: Any) -> str | None:
    """Why ``host`` must not be handed to ssh, or None when it is safe.

    A leading ``-`` would make ssh or rsync read the name as an option
    (``-oProxyCommand=…`` runs a command); whitespace, quotes or ``:`` in odd
    places would break the rsync ``host:path`` syntax or ssh's config.
    """
    if not isinstance(host, str) or not host:
        return "an empty host name"
    if host.startswith("-"):
        return f"{host!r} starts with '-' (ssh would read it as an option)"
    user, at, name = host.rpartition("@")
    if at and not _USER.fullmatch(user):
        return f"{host!r} has an invalid user name {user!r}"
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:
        ok = _IPV6.fullmatch(name) is not None
    else:
        ok = NAME_PATTERN.fullmatch(name) is not None
    return None if ok else f"{host!r} is not a valid host name"


def check_hosts(hosts: Sequence[str]) -> str | None:
    """Knob check for ``remote_hosts``: None, or what is wrong and what is allowed."""
    for host in hosts:
        problem = host_problem(host)
        if problem:
            return f"{HOST_RULE}; {problem}"
    return None


def check_remote_dir(value: str) -> str | None:
    """Knob check for ``remote_dir``: a plain path (relative to the remote home, or absolute)."""
    if not value or not _REMOTE_DIR.fullmatch(value) or value.startswith("-") or value.strip("/") == "":
        return "a path of letters, digits, '.', '_', '+', '-' and '/', relative to the remote home or absolute, not '/'"
    return None


def check_env_names(names: Sequence[str]) -> str | None:
    """Knob check for ``remote_env``: variable names."""
    for name in names:
        if not ENV_NAME_PATTERN.fullmatch(name):
            return f"environment variable names ([A-Za-z_][A-Za-z0-9_]*); {name!r} is not one"
    return None


# ------------------------------------------------------------------ settings


@frozen
class Settings:
    """The knobs of one host choice (hashable: it keys the per-exec memo)."""

    hosts: tuple[str, ...]
    ssh: str
    ssh_config: str | None
    tcp_timeout: float
    recovery_timeout: float
    down_ttl: float
    tcp_probe: bool
    connect_timeout: float
    state_dir: Path

    @property
    def connect_timeout_arg(self) -> int:
        """ssh's ConnectTimeout takes whole seconds: round up, at least 1."""
        return max(1, math.ceil(self.connect_timeout))

    def ssh_options(self) -> list[str]:
        """Options every ssh call gets: the config file, no prompts, the connect timeout."""
        options = ["-F", self.ssh_config] if self.ssh_config else []
        return [*options, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_arg}"]

    @property
    def preflight_timeout(self) -> float:
        """Hard limit on the preflight: ConnectTimeout bounds the TCP connect and
        the key exchange separately, then the remote shell runs ``true``."""
        return 2 * self.connect_timeout_arg + 2.0


def settings_from(ctx, ssh: str) -> Settings:
    """The ``Settings`` of a run from its knobs."""
    config = ctx.knob("remote_ssh_config") or None
    if config:
        home = ctx.environ.get("HOME")
        if config.startswith("~/") and home:
            config = os.path.join(home, config[2:])
        # A relative path from a layer file is relative to that file: resolved
        # against the working directory, a user-layer "ssh_config" would be
        # whatever file each repository puts there, and `ssh -G` runs its
        # `Match exec` commands. From the command line or a variable it is
        # relative to the working directory, where the user gave it.
        knob = getattr(ctx, "knobs", {}).get("remote_ssh_config")
        origin = getattr(getattr(knob, "provenance", None), "file", None)
        base = os.path.dirname(origin) if origin else run_cwd(ctx)
        config = os.path.normpath(os.path.join(base, config))
    return Settings(
        hosts=tuple(ctx.knob("remote_hosts") or ()),
        ssh=ssh,
        ssh_config=config,
        tcp_timeout=float(ctx.knob("remote_tcp_timeout")),
        recovery_timeout=float(ctx.knob("remote_recovery_timeout")),
        down_ttl=float(ctx.knob("remote_down_ttl")),
        tcp_probe=ctx.knob("remote_tcp_probe") == "on",
        connect_timeout=float(ctx.knob("remote_connect_timeout")),
        state_dir=Path(ctx.state_dir),
    )


def run_cwd(ctx) -> Path:
    """The working directory of the run ``ctx`` decides for."""
    probe_ctx = getattr(ctx.facts, "ctx", None)
    return Path(getattr(probe_ctx, "cwd", None) or os.getcwd())


class ProbeFailed(Exception):
    """A host failed one stage of its probe; ``str()`` says why."""


@frozen
class Endpoint:
    """What ``ssh -G`` says about a host alias."""

    alias: str
    hostname: str
    port: int
    proxy: str | None = None  # "ProxyJump bastion", "ProxyCommand …", or None

    @property
    def key(self) -> str:
        """The down-cache key: where a TCP probe goes, or the alias behind a proxy."""
        return f"proxy:{self.alias}" if self.proxy else f"{self.hostname}:{self.port}"


def resolve(settings: Settings, alias: str, environ: Mapping[str, str]) -> Endpoint:
    """Ask ``ssh -G`` for the host name, port and proxy of ``alias``; raise ProbeFailed."""
    from buildpolicy.facts.subproc import run_text

    argv = [settings.ssh, *(["-F", settings.ssh_config] if settings.ssh_config else []), "-G", "--", alias]
    code, out, problem = run_text(argv, env=environ, timeout=RESOLVE_TIMEOUT)
    if code != 0:
        raise ProbeFailed(f"ssh -G failed: {problem or 'no output'}")
    config: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.strip().partition(" ")
        config.setdefault(key.lower(), value.strip())
    hostname = config.get("hostname", alias)
    problem = host_problem(hostname)
    if problem:
        raise ProbeFailed(f"ssh -G gives hostname {problem}")
    try:
        port = int(config.get("port", "22"))
    except ValueError:
        raise ProbeFailed(f"ssh -G gives port {config.get('port')!r}") from None
    proxy = None
    for key, label in (("proxyjump", "ProxyJump"), ("proxycommand", "ProxyCommand")):
        value = config.get(key)
        if value and value.lower() != "none":
            proxy = f"{label} {value}"
            break
    return Endpoint(alias, hostname, port, proxy)

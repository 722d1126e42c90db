"""Remote builds (DESIGN §6 ``remote``): choose a build host, then run cargo there.

Nothing here is imported unless the ``remote`` knob is on: ``buildpolicy env``
at a prompt pays for none of it.

Choosing a host
---------------
Hosts are tried in the order of ``remote_hosts``. Each is resolved with
``ssh -G`` (which prints ssh's effective configuration without touching the
network): host name, port, and any ProxyJump/ProxyCommand. A direct host is
TCP-probed with ``remote_tcp_timeout``, or with the shorter
``remote_recovery_timeout`` while the down cache records a failure less than
``remote_down_ttl`` seconds old (``remote_tcp_probe = off`` skips the probe). A
proxied host is not TCP-probed: the proxy, not the host, would answer. Then
``ssh -o BatchMode=yes -o ConnectTimeout=<remote_connect_timeout> HOST true``
checks that a non-interactive login works. Every host is probed at once, each
in its own thread, and the first reachable one *in the configured order*
wins: a list costs its slowest host, not the sum of them. No probe can hang:
each stage has a deadline the main thread enforces, even on a DNS lookup that
ignores timeouts.

Every host name, configured or printed by ``ssh -G``, is checked before use
(letters, digits, ``.``, ``-``, ``_``, an optional ``user@``, or an IP
address; never a leading ``-``), and every ssh/rsync command line puts ``--``
before it.

The down cache
--------------
``$XDG_STATE_HOME/buildpolicy/remote-down.json`` maps an endpoint
(``hostname:port``, or ``proxy:<alias>``) to the time and reason of its last
failure; a success removes the entry. Updates are merged under a short lock
and written atomically, so many shells probing at once lose nothing; a
corrupt file is ignored and rebuilt.

Running there
-------------
``exec`` of ``cargo build|check|test|bench|run|doc|clippy|rustc|rustdoc``
with a host chosen becomes three steps, all visible in ``exec --dry-run``:

1. *sync*: ``rsync -a --delete`` of the source tree to
   ``<remote_dir>/<name>-<hash>/`` on the host (created if needed). The tree
   is the git work tree containing the project (so path dependencies inside
   the repository come along), or the cargo workspace when there is no git or
   the work tree is the home directory. What git ignores is not sent: ``git
   ls-files --others --ignored --exclude-standard --directory`` lists it
   exactly (negations, ``.git/info/exclude`` and the global excludes file
   included, force-added files kept) and rsync gets it as anchored excludes;
   without git, rsync's ``--filter=':- .gitignore'`` approximates it. ``.git``
   and the target directory are never sent. Excluded paths are also protected
   from ``--delete``, so the host keeps its own ``target/`` (incremental
   builds stay warm) while files deleted locally disappear remotely.
2. *run*: ``ssh HOST <script>``: the script sources ``~/.cargo/env`` when it
   exists, changes to the same relative directory, applies the decided
   environment and ``exec``\\ s cargo with the same arguments. Only variables
   buildpolicy decided are sent (set and unset), every piece quoted with
   ``shlex.quote``; the local environment is not. What only makes sense here
   is translated or dropped (see ``remote_environment``). ``remote_env``
   names caller variables to forward as well. The remote login shell must be
   POSIX-compatible (sh, bash, dash, zsh, ksh). With a terminal on all three
   standard streams ssh gets ``-tt`` (colours, progress, Ctrl-C reaches the
   remote cargo); otherwise ``-T`` keeps stdout and stderr apart.
3. *sync back* (``remote_sync_back``: ``auto`` means for ``build`` only): after
   a successful run, the remote target directory comes back into the local
   one, without cargo's intermediate files (``deps/``, ``build/``,
   ``incremental/``, ``.fingerprint/``): binaries, libraries, examples.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from buildpolicy.errors import EXIT_REMOTE_UNAVAILABLE, BuildpolicyError
from buildpolicy.model import Decision

HOST_VAR = "BUILDPOLICY_REMOTE_HOST"
# Commands that build or run the project: these are worth shipping to a build host.
REMOTE_COMMANDS = frozenset({"build", "check", "test", "bench", "run", "doc", "clippy", "rustc", "rustdoc"})
SYNC_BACK_COMMANDS = frozenset({"build"})
DOWN_CACHE = "remote-down.json"
DOWN_LOCK = "remote-down.lock"
RESOLVE_TIMEOUT = 3.0  # `ssh -G` reads config files only
OUTSIDE_TARGET = ".buildpolicy-target"  # remote target dir when the local one is outside the tree
ROOT_VAR = "bp_root"  # shell variable of the remote script holding the remote tree
# Intermediate build files that stay on the host when artifacts come back.
SYNC_BACK_EXCLUDES = ("incremental/", ".fingerprint/", "build/", "deps/", ".cargo-lock")

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
        ok = _NAME.fullmatch(name) is not None
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
        if not _ENV_NAME.fullmatch(name):
            return f"environment variable names ([A-Za-z_][A-Za-z0-9_]*); {name!r} is not one"
    return None


# ------------------------------------------------------------------ settings


@attrs.frozen
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
        cwd = _cwd(ctx)
        config = os.path.normpath(os.path.join(cwd, config))
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


def _cwd(ctx) -> Path:
    probe_ctx = getattr(ctx.facts, "ctx", None)
    return Path(getattr(probe_ctx, "cwd", None) or os.getcwd())


# ------------------------------------------------------------------ probing


class ProbeFailed(Exception):
    """A host failed one stage of its probe; ``str()`` says why."""


@attrs.frozen
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


@attrs.frozen
class HostReport:
    """The outcome of probing one host."""

    host: str
    ok: bool
    reason: str
    seconds: float
    key: str | None = None  # down-cache key, when the host was resolved


@attrs.frozen
class Choice:
    """The chosen host (or None) and what each probed host said, in configured order."""

    host: str | None
    reports: tuple[HostReport, ...]


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


def tcp_probe(hostname: str, port: int, timeout: float) -> None:
    """Connect to ``hostname:port`` within ``timeout`` seconds in all; raise ProbeFailed.

    Every address the name resolves to shares the one deadline, so a name with
    an IPv6 and an IPv4 address does not cost twice the timeout.
    """
    import socket

    deadline = time.monotonic() + timeout
    try:
        addresses = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ProbeFailed(f"cannot resolve {hostname}: {exc.strerror or exc}") from None
    problem = f"no address for {hostname}"
    for family, kind, proto, _canon, address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining)
            sock.connect(address)
            return
        except ConnectionRefusedError:
            problem = f"{hostname}:{port} refused the connection"
        except (TimeoutError, socket.timeout):
            problem = f"no answer from {hostname}:{port} within {timeout:g}s"
        except OSError as exc:
            problem = f"{hostname}:{port}: {exc.strerror or exc}"
        finally:
            sock.close()
    if time.monotonic() >= deadline and "refused" not in problem:
        problem = f"no answer from {hostname}:{port} within {timeout:g}s"
    raise ProbeFailed(problem)


class _Probe(threading.Thread):
    """Probe one host in a daemon thread: resolve, TCP-probe, ssh preflight.

    ``deadline`` is the monotonic time by which the current stage must end;
    the main thread gives up on the host past it (a DNS lookup cannot be
    interrupted, but it need not be waited for). ``cancel()`` kills a running
    preflight once another host has won.
    """

    SLACK = 0.1  # for thread wake-up, so a stage that just made it counts

    def __init__(self, settings: Settings, alias: str, environ: Mapping[str, str], down: Mapping[str, Any], now: float):
        super().__init__(name=f"probe {alias}", daemon=True)
        self.settings = settings
        self.alias = alias
        self.environ = environ
        self.down = down
        self.now = now
        self.started = time.monotonic()
        self.deadline = self.started + RESOLVE_TIMEOUT + self.SLACK
        self.stage = "ssh -G"
        self.finished = threading.Event()
        self.report: HostReport | None = None
        self.key: str | None = None
        self._proc = None
        self._lock = threading.Lock()
        self._cancelled = False

    def run(self) -> None:
        try:
            self.report = HostReport(self.alias, True, self._probe(), self._elapsed(), self.key)
        except ProbeFailed as exc:
            self.report = HostReport(self.alias, False, str(exc), self._elapsed(), self.key)
        except Exception as exc:  # noqa: BLE001 - a probe bug must not take the run down
            self.report = HostReport(self.alias, False, f"probe error: {type(exc).__name__}: {exc}", self._elapsed(), self.key)
        finally:
            self.finished.set()

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _stage(self, name: str, seconds: float) -> None:
        self.stage = name
        self.deadline = time.monotonic() + seconds + self.SLACK

    def _probe(self) -> str:
        settings = self.settings
        endpoint = resolve(settings, self.alias, self.environ)
        self.key = endpoint.key
        notes = []
        if endpoint.proxy:
            notes.append(f"via {endpoint.proxy}: no TCP probe")
        elif settings.tcp_probe:
            timeout, why = settings.tcp_timeout, "first probe"
            failure = self.down.get(endpoint.key)
            if failure is not None:
                age = self.now - failure["failed_at"]
                timeout, why = settings.recovery_timeout, f"recovery probe: down {age:.0f}s ago"
            self._stage("TCP probe", timeout)
            try:
                tcp_probe(endpoint.hostname, endpoint.port, timeout)
            except ProbeFailed as exc:
                raise ProbeFailed(f"{exc} ({why})") from None
            notes.append(f"{endpoint.hostname}:{endpoint.port} open")
        self._preflight()
        notes.append("ssh BatchMode login ok")
        return ", ".join(notes)

    def _preflight(self) -> None:
        import subprocess

        settings = self.settings
        argv = [settings.ssh, *settings.ssh_options(), "-T", "--", self.alias, "true"]
        self._stage("ssh preflight", settings.preflight_timeout)
        with self._lock:
            if self._cancelled:
                raise ProbeFailed("cancelled: another host was chosen")
            try:
                self._proc = subprocess.Popen(
                    argv, env=dict(self.environ), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True,
                )
            except OSError as exc:
                raise ProbeFailed(f"cannot run ssh: {exc.strerror or exc}") from None
        try:
            _, err = self._proc.communicate(timeout=settings.preflight_timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise ProbeFailed(f"ssh preflight did not finish within {settings.preflight_timeout:g}s") from None
        if self._proc.returncode != 0:
            lines = [line for line in err.strip().splitlines() if line.strip()]
            raise ProbeFailed(f"ssh preflight failed: {lines[-1] if lines else f'exit status {self._proc.returncode}'}")

    def _kill(self) -> None:
        import signal

        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                proc.wait(timeout=1)
            except Exception:  # noqa: BLE001 - best effort
                pass

    def cancel(self) -> None:
        """Stop a preflight still running (another host won); a later one never starts."""
        with self._lock:
            self._cancelled = True
        self._kill()

    def result(self) -> HostReport:
        """Wait for this host, never past its current stage's deadline."""
        while not self.finished.is_set():
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                # Re-check once: the stage may have just moved on.
                if self.finished.wait(0) or self.deadline > time.monotonic():
                    continue
                return HostReport(self.alias, False, f"{self.stage} did not finish in time", self._elapsed(), self.key)
            self.finished.wait(remaining)
        assert self.report is not None
        return self.report


def choose_host(settings: Settings, environ: Mapping[str, str]) -> Choice:
    """Probe every host concurrently; the first reachable one in configured order wins.

    Waits only as long as the hosts before the winner need, then cancels the
    rest. Records failures and recoveries in the down cache.
    """
    cache = DownCache(settings.state_dir)
    now = time.time()
    down = cache.recent(settings.down_ttl, now)
    probes = [_Probe(settings, alias, environ, down, now) for alias in dict.fromkeys(settings.hosts)]
    for probe in probes:
        probe.start()
    reports: list[HostReport] = []
    winner = None
    for probe in probes:
        report = probe.result()
        reports.append(report)
        if report.ok:
            winner = report.host
            break
    for probe in probes[len(reports):]:
        if probe.finished.is_set() and probe.report is not None:
            reports.append(probe.report)  # finished anyway: worth recording
        else:
            probe.cancel()
    failed = {r.key: r.reason for r in reports if not r.ok and r.key and "cancelled" not in r.reason}
    recovered = {r.key for r in reports if r.ok and r.key}
    if failed or recovered & set(down):
        cache.update(failed, recovered, settings.down_ttl, now)
    return Choice(winner, tuple(reports))


class DownCache:
    """The remote down cache in the state directory (see the module docstring)."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / DOWN_CACHE
        self.lock = Path(state_dir) / DOWN_LOCK

    def load(self) -> dict[str, dict[str, Any]]:
        """Every entry; a missing, unreadable or corrupt file reads as empty."""
        import json

        try:
            data = json.loads(self.path.read_bytes())
            hosts = data["hosts"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}
        if not isinstance(hosts, dict):
            return {}
        entries = {}
        for key, entry in hosts.items():
            if isinstance(entry, dict) and isinstance(entry.get("failed_at"), (int, float)):
                entries[str(key)] = {"failed_at": float(entry["failed_at"]), "reason": str(entry.get("reason", ""))}
        return entries

    def recent(self, ttl: float, now: float) -> dict[str, dict[str, Any]]:
        """Entries whose failure is less than ``ttl`` seconds old (a future time counts as now)."""
        return {key: entry for key, entry in self.load().items() if now - ttl < entry["failed_at"] <= now + 60}

    def update(self, failed: Mapping[str, str], recovered, ttl: float, now: float) -> bool:
        """Merge ``failed`` (key → reason) and drop ``recovered`` keys and expired entries.

        Re-reads the file under the lock so a concurrent shell's entries survive;
        returns False when the lock or the write failed (the cache is advisory).
        """
        import json

        from buildpolicy.locks import locked
        from buildpolicy.paths import atomic_write

        with locked(self.lock, timeout=2.0) as held:
            if not held:
                return False
            entries = {k: v for k, v in self.load().items() if now - ttl < v["failed_at"] <= now + 60}
            for key in recovered:
                entries.pop(key, None)
            for key, reason in failed.items():
                entries[key] = {"failed_at": now, "reason": reason}
            payload = json.dumps({"version": 1, "hosts": entries}, indent=1, sort_keys=True).encode()
            try:
                atomic_write(self.path, payload)
            except OSError:
                return False
        return True


# ------------------------------------------------------------------ the decision


@attrs.frozen
class Assessment:
    """The remote decision of one run, shared by ``decide`` and ``wrap_exec``.

    ``unavailable`` is True when remote building was wanted but no host can
    be used: ``remote_fallback = error`` then makes ``exec`` exit 75.
    """

    host: str | None
    status: str
    reason: str
    unavailable: bool = False
    choice: Choice | None = None


# decide() and wrap_exec() of the same run share their assessment.
_assessed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _choose(settings: Settings, environ: Mapping[str, str]) -> Choice:
    from buildpolicy.remote_session import current_session

    session = current_session()
    if session is None:
        return choose_host(settings, environ)
    # The gate marker differs between the two passes of one exec and means nothing to ssh.
    key = (settings, frozenset((k, v) for k, v in environ.items() if not k.startswith("BUILDPOLICY_")))
    if key not in session:
        session[key] = choose_host(settings, environ)
    return session[key]


def assess(ctx) -> Assessment:
    """Decide where this run builds (probing hosts only when it must)."""
    cached = _assessed.get(ctx)
    if cached is not None:
        return cached
    result = _assess(ctx)
    _assessed[ctx] = result
    return result


def _assess(ctx) -> Assessment:
    fallback = ctx.knob("remote_fallback")
    tail = (
        "; remote_fallback = error: `exec` exits 75"
        if fallback == "error"
        else "; building locally (remote_fallback = local)"
    )
    hosts = tuple(ctx.knob("remote_hosts") or ())
    if not hosts:
        return Assessment(None, "local:no-hosts", f"remote is on ({ctx.knob_source('remote')}) but remote_hosts is empty{tail}", True)
    if ctx.cargo_argv is not None:
        command = ctx.fact("cargo.command")
        if command not in REMOTE_COMMANDS:
            return Assessment(
                None, f"local:command:{command or 'none'}",
                f"cargo {command or '(no command)'} runs here: only {', '.join(sorted(REMOTE_COMMANDS))} go to a build host",
            )
    if getattr(ctx.facts, "hermetic", False):
        return Assessment(None, "local:not-probed", "policy test: build hosts are never probed", False)
    ssh = ctx.fact("tool.ssh")
    if not ssh:
        return Assessment(None, "local:no-ssh", f"ssh is not on PATH{tail}", True)
    if ctx.command == "exec" and ctx.cargo_argv is not None and not ctx.fact("tool.rsync"):
        return Assessment(None, "local:no-rsync", f"rsync is not on PATH (needed to send the tree){tail}", True)
    settings = settings_from(ctx, ssh)
    choice = _choose(settings, ctx.environ)
    lines = [f"{r.host}: {'up' if r.ok else 'down'} after {r.seconds:.2f}s ({r.reason})" for r in choice.reports]
    if choice.host is not None:
        return Assessment(choice.host, f"remote:{choice.host}", "; ".join(lines), choice=choice)
    return Assessment(None, "local:hosts-down", "; ".join(lines) + tail, True, choice)


def decision(ctx) -> Decision:
    """The ``remote`` decision (the knob is on): ``remote:<host>`` or ``local:<why>``."""
    result = assess(ctx)
    if result.host is not None:
        # Forced: this variable is buildpolicy's answer for wrappers, not a build setting
        # a caller would want to keep.
        return Decision("remote", result.host, result.status, result.reason, set_env={HOST_VAR: result.host}, force=True)
    # A stale host from the caller's environment must not send a wrapper to a host that is down.
    return Decision("remote", None, result.status, result.reason, unset=(HOST_VAR,))


# ------------------------------------------------------------------ the exec plan


def wrap_exec(plan, ctx):
    """Turn ``plan`` into a remote plan when a host was chosen; raise exit 75 per fallback.

    A non-cargo command is left alone: it runs here with ``BUILDPOLICY_REMOTE_HOST``
    set, for a wrapper script that does its own remote work.
    """
    result = assess(ctx)
    if result.host is None:
        if result.unavailable and ctx.knob("remote_fallback") == "error":
            raise BuildpolicyError(
                f"a remote build is required (remote_fallback = error) but no build host is usable: {result.reason}",
                EXIT_REMOTE_UNAVAILABLE,
            )
        return None
    if ctx.cargo_argv is None:
        return None
    return remote_plan(plan, ctx, result.host)


def _sync_root(cwd: Path, start: Path, environ: Mapping[str, str], git: str | None) -> Path:
    from buildpolicy.workspace import workspace_root

    workspace = workspace_root(start) or start
    if git:
        from buildpolicy.facts.subproc import run_text

        code, out, _ = run_text([git, "-C", str(start), "rev-parse", "--show-toplevel"], env=environ, cwd=cwd)
        top = Path(out.strip()) if code == 0 and out.strip() else None
        home = environ.get("HOME")
        # A dotfiles repository in $HOME would make "the tree" the whole home directory.
        if top is not None and top != Path("/") and (not home or top != Path(home)) and _inside(workspace, top):
            return top
    return workspace


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def project_dir_name(root: Path) -> str:
    """``<name>-<hash>``: readable, and unique per machine and tree (worktrees differ)."""
    import hashlib
    import socket

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", root.name) or "root"
    if name[0] in ".-":
        name = "p" + name
    digest = hashlib.sha256(f"{socket.gethostname()}:{root}".encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def _root_pattern(root: Path) -> re.Pattern:
    # The tree's path as a whole path component: /src/app must not match /src/application.
    return re.compile(re.escape(str(root)) + r"(?=$|[/:\s=,;])")


def quote_with_root(value: str, root: Path) -> str:
    """Quote ``value`` for the remote shell, with the local tree's path turned into ``"$bp_root"``."""
    import shlex

    parts = _root_pattern(root).split(value)
    if len(parts) == 1:
        return shlex.quote(value)
    return f'"${ROOT_VAR}"'.join(shlex.quote(part) if part else "" for part in parts)


@attrs.frozen
class RemoteEnv:
    """The environment sent to the host: what to export and unset, and what was left out."""

    exports: dict[str, str]  # name -> value (local paths still in it; quote_with_root rewrites)
    unset: tuple[str, ...]
    programs: dict[str, str]  # name -> program name, kept only if the host has that program
    dropped: dict[str, str]  # name -> why it is not sent


def remote_environment(env: Mapping[str, str], baseline: Mapping[str, str], ctx, extra: Sequence[str]) -> RemoteEnv:
    """Choose the variables the remote build gets.

    Only what buildpolicy decided travels (the difference between the exec
    environment and the caller's), plus the caller's variables named by the
    ``remote_env`` knob. Values made for this machine are handled:

    - ``BUILDPOLICY_*``: local bookkeeping (env state, remote host, gate), never sent;
    - ``TMPDIR``: a scratch directory under this machine's cache dir; the host
      uses its own temporary directory;
    - ``CARGO_BUILD_JOBS``: sized from this machine's memory and CPUs, so it is
      dropped unless the ``jobs`` knob set it on purpose (then it is sent);
    - ``CARGO_TARGET_DIR``/``CARGO_BUILD_TARGET_DIR``: replaced by the remote
      target directory the script exports;
    - a value that is the path of a program on this machine
      (``RUSTC_WRAPPER=/usr/bin/sccache``, ``CARGO_TARGET_<T>_LINKER=/usr/bin/clang``):
      sent as the program name, looked up on the host's PATH, and the variable
      is unset there when the host lacks the program (no sccache there means
      an unwrapped build, not a failed one);
    - any other value naming this machine's cache or state directory: dropped;
    - the local tree's path inside a value or argument becomes the remote tree's.
    """
    exports: dict[str, str] = {}
    programs: dict[str, str] = {}
    dropped: dict[str, str] = {}
    local_dirs = [str(ctx.cache_dir), str(ctx.state_dir)]
    jobs_knob = ctx.knobs["jobs"].value if "jobs" in ctx.knobs else None
    candidates = {name: value for name, value in env.items() if baseline.get(name) != value}
    for name in extra:
        if name in env:
            candidates[name] = env[name]
    for name, value in sorted(candidates.items()):
        if name.startswith("BUILDPOLICY_"):
            continue
        if not _ENV_NAME.fullmatch(name):
            dropped[name] = "not a portable variable name"
        elif name == "TMPDIR":
            dropped[name] = "a directory on this machine; the host uses its own temporary directory"
        elif name == "CARGO_BUILD_JOBS" and jobs_knob is None:
            dropped[name] = "sized for this machine's memory and CPUs; cargo on the host picks its own (set the jobs knob to send one)"
        elif name in ("CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"):
            dropped[name] = "replaced by the remote target directory"
        elif _is_local_program(value):
            program = os.path.basename(value)
            if _NAME.fullmatch(program):
                programs[name] = program
            else:
                dropped[name] = f"{value} is a program path on this machine"
        elif any(d and d in value for d in local_dirs):
            dropped[name] = f"{value!r} names this machine's buildpolicy cache or state directory"
        else:
            exports[name] = value
    unset = tuple(
        sorted(name for name in baseline if name not in env and not name.startswith("BUILDPOLICY_") and _ENV_NAME.fullmatch(name))
    )
    return RemoteEnv(exports, unset, programs, dropped)


def _is_local_program(value: str) -> bool:
    """Whether ``value`` is the absolute path of an executable file here (``/usr/bin/sccache``)."""
    return os.path.isabs(value) and os.path.isfile(value) and os.access(value, os.X_OK)


def _rsync_e(argv: Sequence[str]) -> str:
    """Join an ssh command line for rsync's ``-e``, which splits on spaces and honours quotes."""
    words = []
    for word in argv:
        if word and not any(c in word for c in " \t'\""):
            words.append(word)
        elif "'" not in word:
            words.append(f"'{word}'")
        elif '"' not in word:
            words.append(f'"{word}"')
        else:
            raise BuildpolicyError(f"cannot pass {word!r} to rsync -e: it holds both quote characters")
    return " ".join(words)


def _rsync_host(host: str) -> str:
    user, at, name = host.rpartition("@")
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # an IPv6 address: rsync's host:path needs the brackets
    return f"{user}{at}{name}"


def _escape_pattern(path: str) -> str:
    # rsync matches a pattern literally unless it holds a wildcard; then a
    # backslash escapes. Git paths with *?[ need every special character escaped.
    if any(c in path for c in "*?["):
        return re.sub(r"([*?\[\\])", r"\\\1", path)
    return path


def ignored_paths(git: str, root: Path, environ: Mapping[str, str]) -> list[str] | None:
    """What git ignores under ``root`` (directories end in ``/``), or None without git."""
    import subprocess

    try:
        proc = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"],
            env=dict(environ), stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return [p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p]


def remote_plan(plan, ctx, host: str):
    """The remote ``ExecPlan``: sync, run and sync-back steps, shown by ``exec --dry-run``."""
    import shlex

    from buildpolicy.context import ExecPlan
    from buildpolicy.facts import parse_cargo_argv
    from buildpolicy.paths import atomic_write
    from buildpolicy.workspace import manifest_path_arg, target_dir, target_dir_arg

    problem = host_problem(host)
    if problem:  # checked when the knob was read; checked again where it is used
        raise BuildpolicyError(f"remote host {problem}")
    cwd = _cwd(ctx)
    argv = list(plan.argv)
    manifest = manifest_path_arg(argv)
    start = (cwd / manifest).parent.resolve() if manifest else cwd
    git = ctx.fact("tool.git")
    root = _sync_root(cwd, start, ctx.environ, git)
    remote_root = f"{ctx.knob('remote_dir').rstrip('/')}/{project_dir_name(root)}"
    workdir = os.path.relpath(cwd, root) if _inside(cwd, root) else "."

    local_target = target_dir(argv, plan.env, cwd)
    target_rel = os.path.relpath(local_target, root) if _inside(local_target, root) else OUTSIDE_TARGET
    # The remote script exports CARGO_TARGET_DIR itself; a --target-dir argument would fight it.
    _, spans = target_dir_arg(argv)
    args = [arg for index, arg in enumerate(argv) if index not in spans]

    renv = remote_environment(plan.env, ctx.environ, ctx, tuple(ctx.knob("remote_env") or ()))
    settings = settings_from(ctx, ctx.fact("tool.ssh"))
    ssh_base = [settings.ssh, *settings.ssh_options()]
    interactive = all(_isatty(fd) for fd in (0, 1, 2))
    exports = dict(renv.exports)
    if not interactive and _isatty(2) and "CARGO_TERM_COLOR" not in plan.env:
        exports["CARGO_TERM_COLOR"] = "always"  # cargo sees a pipe over ssh -T, but our stderr is a terminal

    q = shlex.quote
    lines = [
        f"{ROOT_VAR}={q(remote_root)}",
        f'case ${ROOT_VAR} in /*) ;; *) {ROOT_VAR}=$HOME/${ROOT_VAR} ;; esac',
        'if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi',
        f'cd "${ROOT_VAR}"' + ("" if workdir == "." else "/" + q(workdir)) + " || exit 1",
    ]
    if renv.unset:
        lines.append("unset " + " ".join(renv.unset))
    lines += [f"export {name}={quote_with_root(value, root)}" for name, value in sorted(exports.items())]
    lines.append(f'export CARGO_TARGET_DIR="${ROOT_VAR}"/{q(target_rel)}')
    for name, program in sorted(renv.programs.items()):
        note = f"buildpolicy: note: {program} is not installed on {host}: building without {name}"
        lines.append(
            f"if command -v {q(program)} >/dev/null 2>&1; then export {name}={q(program)}; "
            f"else unset {name}; echo {q(note)} >&2; fi"
        )
    command = ["cargo", *args[1:]] if args else ["cargo"]
    lines.append("exec " + " ".join(quote_with_root(arg, root) for arg in command))
    script = "\n".join(lines)

    rsync = ctx.fact("tool.rsync")
    rsync_e = _rsync_e(ssh_base)
    target = _rsync_host(host)
    sync = [rsync, "-a", "--delete", "-e", rsync_e, f"--rsync-path=mkdir -p {q(remote_root)} && rsync", "--exclude=.git"]
    if target_rel != OUTSIDE_TARGET:
        sync.append(f"--exclude=/{_escape_pattern(target_rel)}/")
    sync.append(f"--exclude=/{OUTSIDE_TARGET}/")
    # A Cargo.lock the host generated (the tree has none) survives --delete, so the
    # host does not resolve dependencies again at every build.
    sync.append("--filter=P Cargo.lock")
    ignored = ignored_paths(git, root, ctx.environ) if git and (root / ".git").exists() else None
    if ignored is not None:
        exclude_file = Path(ctx.cache_dir) / "remote" / f"{project_dir_name(root)}.exclude"
        atomic_write(exclude_file, b"".join(b"/" + _escape_pattern(p).encode("utf-8", "surrogateescape") + b"\0" for p in ignored))
        sync += ["--from0", f"--exclude-from={exclude_file}"]
        ignore_rule = f"git ls-files --ignored ({len(ignored)} paths, listed in {exclude_file})"
    else:
        sync.append("--filter=:- .gitignore")
        ignore_rule = "rsync --filter=':- .gitignore' (no git work tree)"
    sync += ["--", f"{root}/", f"{target}:{remote_root}/"]

    run = [settings.ssh, *settings.ssh_options(), "-tt" if interactive else "-T", "--", host, script]

    cargo_command = parse_cargo_argv(argv).command
    mode = ctx.knob("remote_sync_back")
    sync_back = mode == "on" or (mode == "auto" and cargo_command in SYNC_BACK_COMMANDS)
    steps = [{"name": "sync", "argv": sync}, {"name": "run", "argv": run}]
    if sync_back:
        back = [rsync, "-a", "-e", rsync_e, *(f"--exclude={p}" for p in SYNC_BACK_EXCLUDES),
                "--", f"{target}:{remote_root}/{target_rel}/", f"{local_target}/"]
        steps.append({"name": "sync-back", "argv": back})
    execution = {
        "mode": "remote",
        "host": host,
        "root": str(root),
        "remote_dir": remote_root,
        "workdir": workdir,
        "target_dir": str(local_target),
        "remote_target_dir": f"{remote_root}/{target_rel}",
        "ignored": ignore_rule,
        "sync_back": sync_back,
        "env": dict(sorted(exports.items())),
        "unset": list(renv.unset),
        "programs": dict(renv.programs),
        "dropped": dict(renv.dropped),
        "script": script,
        "steps": steps,
    }
    return ExecPlan(argv=plan.argv, env=plan.env, execution=execution)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def run_plan(execution: Mapping[str, Any], env: Mapping[str, str], note) -> int:
    """Run a remote plan's steps; return the build's exit status (or a failed step's).

    rsync's own output goes to stderr: stdout carries only the build's (``cargo
    run`` output must stay pipeable). Artifacts come back only after a
    successful build.
    """
    from buildpolicy import childproc

    host = execution["host"]
    steps = {step["name"]: step["argv"] for step in execution["steps"]}
    status = childproc.run(steps["sync"], env, stdout=2, label="rsync")
    if status != 0:
        note(f"error: sending {execution['root']} to {host} failed (rsync exit status {status})")
        return status
    status = childproc.run(steps["run"], env, label="ssh")
    if status != 0 or "sync-back" not in steps:
        return status
    try:
        Path(execution["target_dir"]).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        note(f"error: cannot create {execution['target_dir']}: {exc.strerror or exc}")
        return 1
    back = childproc.run(steps["sync-back"], env, stdout=2, label="rsync")
    if back != 0:
        note(f"error: built on {host}, but bringing the artifacts back failed (rsync exit status {back})")
        return back
    return 0

"""Probe build hosts (TCP, then an ssh preflight, all at once), remember the ones
that are down, and make the ``remote`` decision."""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildpolicy.record import frozen
from buildpolicy.model import Decision
from buildpolicy.run.remote.hosts import (
    HOST_VAR,
    REMOTE_COMMANDS,
    RESOLVE_TIMEOUT,
    ProbeFailed,
    Settings,
    resolve,
    settings_from,
)

# Commands a user runs on purpose probe the hosts; the rest (`env` at every prompt
# above all) decide from recorded results and never wait on the network.
PROBING_COMMANDS = frozenset({"exec", "explain", "doctor"})
DOWN_CACHE = "remote-down.json"
DOWN_LOCK = "remote-down.lock"


@frozen
class HostReport:
    """The outcome of probing one host."""

    host: str
    ok: bool
    reason: str
    seconds: float
    key: str | None = None  # down-cache key, when the host was resolved


@frozen
class Choice:
    """The chosen host (or None) and what each probed host said, in configured order."""

    host: str | None
    reports: tuple[HostReport, ...]


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

    def __init__(self, settings: Settings, alias: str, environ: Mapping[str, str], down: Mapping[str, Any], now: float,
                 control: list[str] | None = None):
        super().__init__(name=f"probe {alias}", daemon=True)
        self.settings = settings
        self.control = control or []  # ssh options that make the preflight this exec's shared master
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
        argv = [settings.ssh, *settings.ssh_options(), *self.control, "-T", "--", self.alias, "true"]
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


def choose_host(settings: Settings, environ: Mapping[str, str], control=None) -> Choice:
    """Probe every host concurrently; the first reachable one in configured order wins.

    Waits only as long as the hosts before the winner need, then cancels the
    rest. Records failures and recoveries in the down cache, and every result
    for ``env`` (``records``). With ``control`` (a ``control.ControlDir``), a
    successful preflight stays open as the shared connection of this ``exec``.
    """
    from buildpolicy.run.remote.records import ProbeRecords

    cache = DownCache(settings.state_dir)
    now = time.time()
    down = cache.recent(settings.down_ttl, now)
    base = settings.ssh_options()
    probes = [
        _Probe(settings, alias, environ, down, now,
               control.options(settings.ssh, base, settings.ssh_config, alias) if control is not None else None)
        for alias in dict.fromkeys(settings.hosts)
    ]
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
    ProbeRecords(settings.state_dir).update(
        settings.ssh_config, ((r.host, r.ok, r.reason) for r in reports if "cancelled" not in r.reason), time.time())
    return Choice(winner, tuple(reports))


class DownCache:
    """The remote down cache in the state directory (see the module docstring)."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / DOWN_CACHE
        self.lock = Path(state_dir) / DOWN_LOCK

    def load(self) -> dict[str, dict[str, Any]]:
        """Every entry; a missing, unreadable, unsafe or corrupt file reads as empty
        (``filestate.load_state_json``: never a FIFO's wait, never another user's file)."""
        from buildpolicy.filestate import load_state_json

        data = load_state_json(self.path)
        hosts = data.get("hosts") if isinstance(data, dict) else None
        if not isinstance(hosts, dict):
            return {}
        entries = {}
        for key, entry in hosts.items():
            failed_at = entry.get("failed_at") if isinstance(entry, dict) else None
            if isinstance(failed_at, (int, float)) and not isinstance(failed_at, bool) and math.isfinite(failed_at):
                reason = entry.get("reason")
                entries[str(key)] = {"failed_at": float(failed_at), "reason": reason if isinstance(reason, str) else ""}
        return entries

    def recent(self, ttl: float, now: float) -> dict[str, dict[str, Any]]:
        """Entries whose failure is less than ``ttl`` seconds old (a future time counts as now)."""
        return {key: entry for key, entry in self.load().items() if now - ttl < entry["failed_at"] <= now + 60}

    def update(self, failed: Mapping[str, str], recovered, ttl: float, now: float) -> bool:
        """Merge ``failed`` (key → reason) and drop ``recovered`` keys and expired entries.

        Re-reads the file under the lock so a concurrent shell's entries survive;
        returns False when the lock or the write failed (the cache is advisory).
        """
        def change(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            entries = {k: v for k, v in entries.items() if now - ttl < v["failed_at"] <= now + 60}
            for key in recovered:
                entries.pop(key, None)
            for key, reason in failed.items():
                entries[key] = {"failed_at": now, "reason": reason}
            return entries

        from buildpolicy.run.remote.records import merge_hosts

        return merge_hosts(self.path, self.lock, self.load, change)


# ------------------------------------------------------------------ the decision


@frozen
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
    from buildpolicy.run.remote.session import current_session

    session = current_session()
    if session is None:
        return choose_host(settings, environ)
    from buildpolicy.run.remote.control import session_control

    # The gate marker differs between the two passes of one exec and means nothing to ssh.
    key = (settings, frozenset((k, v) for k, v in environ.items() if not k.startswith("BUILDPOLICY_")))
    if key not in session:
        session[key] = choose_host(settings, environ, session_control(environ))
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
    from buildpolicy.facts.tools import repository_binary_problem

    probe_ctx = getattr(ctx.facts, "ctx", None)
    problem = probe_ctx and repository_binary_problem(ssh, probe_ctx)
    if problem:
        return Assessment(None, "local:no-ssh", f"{problem}{tail}", True)
    if ctx.command == "exec" and ctx.cargo_argv is not None and not ctx.fact("tool.rsync"):
        return Assessment(None, "local:no-rsync", f"rsync is not on PATH (needed to send the tree){tail}", True)
    settings = settings_from(ctx, ssh)
    if ctx.command not in PROBING_COMMANDS:
        return _from_records(ctx, settings, tail)
    choice = _choose(settings, ctx.environ)
    lines = [f"{r.host}: {'up' if r.ok else 'down'} after {r.seconds:.2f}s ({r.reason})" for r in choice.reports]
    if choice.host is not None:
        return Assessment(choice.host, f"remote:{choice.host}", "; ".join(lines), choice=choice)
    return Assessment(None, "local:hosts-down", "; ".join(lines) + tail, True, choice)


def _from_records(ctx, settings: Settings, tail: str) -> Assessment:
    """``env``'s decision: recorded results only, never the network (DESIGN §13).

    A missing or old result starts a background refresh; this prompt answers
    from what is recorded, the next one from the refreshed results. A warm
    ``env`` replays this answer while the records file is unchanged and until
    the oldest result relied on needs a refresh.
    """
    from buildpolicy.run.remote import records, refresh

    recorded = records.read(settings.state_dir, settings.ssh_config, settings.hosts, time.time())
    ctx.depends_on_file(settings.state_dir / records.RECORDS)
    notes = ["decided from recorded probes (env never probes; exec and explain do)"]
    if recorded.refresh:
        notes.append(refresh.start(settings, ctx.environ))
        # The next prompt must look again: the refresh will have new results.
        ctx.not_replayable("build-host probe results are being refreshed")
    elif recorded.oldest is not None:
        ctx.valid_until(recorded.oldest + records.REFRESH_AFTER)
    reason = "; ".join([*recorded.lines, *notes])
    if recorded.host is not None:
        return Assessment(recorded.host, f"remote:{recorded.host}", reason)
    if recorded.unknown:
        return Assessment(None, "local:not-probed", reason + "; building locally until a probe finds a host up")
    return Assessment(None, "local:hosts-down", reason + tail, True)


def decision(ctx) -> Decision:
    """The ``remote`` decision (the knob is on): ``remote:<host>`` or ``local:<why>``."""
    result = assess(ctx)
    if result.host is not None:
        # Forced: this variable is buildpolicy's answer for wrappers, not a build setting
        # a caller would want to keep.
        return Decision("remote", result.host, result.status, result.reason, set_env={HOST_VAR: result.host}, force=True)
    # A stale host from the caller's environment must not send a wrapper to a host that is down.
    return Decision("remote", None, result.status, result.reason, unset=(HOST_VAR,))

"""The governor loop: admission, jobserver tokens and preemption by live memory.

One thread of the ``exec`` process, woken by its rustc wrappers' messages and
a timer: ten times a second near the safety margin, less often (down to twice a
second) while memory could not reach the margin before the next look even if it
fell as fast as rustc can allocate. Each tick it

1. samples memory (``livemem``) and the RSS of every running rustc;
2. preempts: under pressure (available below the safety margin, or tasks
   stalling on memory) with two or more rustc running, the youngest is
   stopped (its wrapper kills it and asks again); one at a time, waiting
   until the victim's memory is free before judging again;
3. admits waiting compilations whose estimate fits in what is available
   minus the margin minus what running ones are still expected to grow
   (estimate − RSS now); the first waiter runs alone when nothing else runs;
   a later one may pass a head that does not fit, for ``BACKFILL_SECONDS``;
4. sets the jobserver: idle tokens = how many more compilations of the
   smallest kind still expected fit, never more than ``max_jobs - 1`` tokens
   in all (cargo's own implicit token is the first job).

A crate's estimate is what it was learned to need (``peaks``), else the
prior (``mib_per_job``); a running rustc that outgrows it raises it for this
build, and a preempted one comes back with at least what it had reached.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import threading
import time
from pathlib import Path

from buildpolicy.run.governor.crates import KINDS, unit_key
from buildpolicy.run.governor.protocol import decode, encode
from buildpolicy.run.governor.livemem import MIB, process_memory

TICK_SECONDS = 0.1  # the cadence near the margin
CALM_TICK_SECONDS = 0.5  # the slowest cadence, with memory far from the margin
FASTEST_FALL = 1 << 30  # bytes a second: what a few rustc allocating at once may take (LLVM: ~hundreds of MiB/s each)
BACKFILL_SECONDS = 10.0
GROWTH = 1.25  # an estimate that proved too small is raised this much above what was seen
STALL_PRESSURE = 0.30  # share of a tick in which all tasks stalled on memory
LOOKAHEAD_SECONDS = 0.5  # LLVM allocates hundreds of MiB a second: act on where memory is heading
TREND_SECONDS = 1.0
PREEMPT_SETTLE_SECONDS = 3.0
MAX_LINE = 4096  # a message is a short line: more without a newline is not a wrapper talking


def safety_margin(limit: int) -> int:
    """Memory kept free: 5 % of the limit, between 192 MiB and 1 GiB."""
    return int(min(max(limit * 0.05, 192 * MIB), 1024 * MIB))


class Compilation:
    """One rustc wrapper connected to the governor."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.buffer = b""
        self.unit: dict = {}
        self.key = ""
        self.estimate = 0
        self.state = "connected"  # waiting, admitted, running, done
        self.queued_at = 0.0
        self.started_at = 0.0
        self.rustc_pid: int | None = None  # the process whose memory counts
        self.rss = 0
        self.hwm = 0
        self.attempt = 0
        self.preempting = False
        self.reported_cpu = 0.0  # the wrapper's CPU seconds already counted (it reports a running total)

    @property
    def label(self) -> str:
        """``crate (kind)`` for messages."""
        return f"{self.unit.get('crate', '?')} ({self.unit.get('kind', '?')})"

    def send(self, op: str) -> None:
        """Send message ``op`` without ever blocking the loop; a wrapper that is gone is dropped by
        the next read. One that does not read its messages (a real one never lets a few bytes
        pile up) is hung up on, as the loop must not wait on it while every other build waits."""
        data = encode(op)
        try:
            sent = self.conn.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            return
        if sent < len(data):
            try:
                self.conn.shutdown(socket.SHUT_RDWR)  # the next read sees the end and drops it
            except OSError:
                pass


class Governor:
    """Serves one build: its rustc wrappers connect to ``socket_path``."""

    def __init__(self, *, directory: Path, max_jobs: int, jobserver, memory, learned: dict[str, dict[str, int]],
                 prior: int, profile: str, check: bool = False, note, finder=None):
        self.max_jobs = max(1, max_jobs)
        self.jobserver = jobserver
        self.memory = memory
        self.learned = learned  # {profile key: {crate key: estimate bytes}}
        self.prior = prior
        self.profile = profile
        self.build_profile_key = f"{profile}:check" if check else profile  # what most units of this build are
        self.note = note
        self.finder = finder
        self.socket_path = directory / "governor.sock"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.socket_path))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.wake_r, self.wake_w = os.pipe()
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.compilations: list[Compilation] = []
        self.raised: dict[tuple[str, str], int] = {}  # estimates raised during this build
        self.finished: set[tuple[str, str]] = set()
        self.observed: dict[str, dict[str, int]] = {}  # {profile key: {crate key: peak bytes}}
        self.preemptions: list[dict] = []
        self.victim: Compilation | None = None  # preempted, memory not seen free yet
        self.victim_since = 0.0
        self.victim_exited_at: float | None = None
        self.stopping = False
        self.failure: str | None = None
        self.thread: threading.Thread | None = None
        self.began = time.monotonic()
        self.stats = {"ticks": 0, "max_tokens": 0, "token_seconds": 0.0, "admitted": 0, "waited": 0,
                      "peak_used": 0, "peak_rustc": 0, "max_concurrent": 0, "loop_cpu": 0.0, "wrappers_cpu": 0.0, "min_available": None, "limit": None, "margin": None}
        self._last_tick = time.monotonic()
        self.interval = TICK_SECONDS  # until the first sample says how far the margin is
        self._sample = memory.sample()
        self.history: list[tuple[float, int]] = []  # (time, available) over the last TREND_SECONDS
        self.trace = None  # a file to write one line per tick to (BUILDPOLICY_GOVERNOR_TRACE), for diagnosis

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in a daemon thread."""
        self.thread = threading.Thread(target=self._loop, name="buildpolicy-governor", daemon=True)
        self.thread.start()

    def stop(self) -> dict:
        """Stop the loop and return what it saw (for the action log and the peaks file)."""
        self.stopping = True
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass
        if self.thread is not None:
            self.thread.join(timeout=5.0)
        for comp in self.compilations:
            comp.conn.close()
        self.selector.close()
        self.listener.close()
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        return self.summary()

    def _loop(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # noqa: BLE001 - a governor bug must never hang or fail the build
            self.failure = f"{type(exc).__name__}: {exc}"
            self.note(f"stopped governing after an internal error ({self.failure}); the build goes on ungoverned")
            self._abandon()
        finally:
            self.stats["loop_cpu"] = time.thread_time()  # this thread's own CPU: the governor's cost

    def _abandon(self) -> None:
        """Let every wrapper run its rustc ungoverned: close the socket (and all connections)
        and give cargo its full parallelism back."""
        for comp in list(self.compilations):
            self._drop(comp)
        try:
            self.listener.close()
            os.unlink(self.socket_path)
        except OSError:
            pass
        try:
            if self.jobserver.circulating < self.max_jobs - 1:
                self.jobserver.grant(self.max_jobs - 1 - self.jobserver.circulating)
        except OSError:
            pass

    def _serve(self) -> None:
        next_tick = time.monotonic()
        while not self.stopping:
            timeout = max(0.0, next_tick - time.monotonic())
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    self._accept()
                elif key.data == "wake":
                    os.read(self.wake_r, 64)
                else:
                    self._receive(key.data)
            if time.monotonic() >= next_tick:
                self.tick()
                next_tick = time.monotonic() + self.interval

    # -- messages ---------------------------------------------------------------------

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._make_room()
            return
        conn.setblocking(True)
        comp = Compilation(conn)
        self.compilations.append(comp)
        self.selector.register(conn, selectors.EVENT_READ, comp)

    def _make_room(self) -> None:
        """Out of descriptors (connections that say nothing, by the thousand): hang up on the
        oldest that never spoke, else the oldest still waiting (it runs ungoverned), so that
        the next wrapper is heard instead of every one waiting in the listen queue."""
        for state in ("connected", "waiting"):
            for comp in self.compilations:
                if comp.state == state:
                    self._drop(comp)
                    return
        time.sleep(TICK_SECONDS)  # all of them run: the listener stays readable, do not spin on it

    def _receive(self, comp: Compilation) -> None:
        try:
            data = comp.conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(comp)
            return
        comp.buffer += data
        *lines, comp.buffer = comp.buffer.split(b"\n")
        if len(comp.buffer) > MAX_LINE:
            self._drop(comp)
            return
        for line in lines:
            message = decode(line)
            if message is not None:
                self._handle(comp, message)
        self.tick(admit_only=True)

    def _drop(self, comp: Compilation) -> None:
        try:
            self.selector.unregister(comp.conn)
        except (KeyError, ValueError):
            pass
        comp.conn.close()
        comp.state = "done"
        if comp in self.compilations:
            self.compilations.remove(comp)
        if self.victim is comp:
            self.victim = None

    def _handle(self, comp: Compilation, message: dict) -> None:
        op = message.get("op")
        if op == "admit" and isinstance(message.get("crate"), str) and message.get("kind") in KINDS:
            comp.unit = {k: message.get(k) for k in ("crate", "kind", "check", "metadata", "via_server", "package")}
            comp.key = unit_key(comp.unit)
            comp.attempt = int(message.get("attempt") or 0)
            comp.estimate = self._estimate(comp)
            comp.state = "waiting"
            comp.queued_at = time.monotonic()
            comp.rss = comp.hwm = 0
            comp.rustc_pid = None
        elif op == "started" and comp.state == "admitted":
            comp.state = "running"
            comp.started_at = time.monotonic()
            if not comp.unit.get("via_server"):
                comp.rustc_pid = message.get("rustc_pid") if isinstance(message.get("rustc_pid"), int) else None
            concurrent = sum(1 for c in self.compilations if c.state == "running")
            self.stats["max_concurrent"] = max(self.stats["max_concurrent"], concurrent)
        elif op == "exit" and comp.state in ("admitted", "running"):
            self._finish(comp, message)

    def _profile_key(self, comp: Compilation) -> str:
        return f"{self.profile}:check" if comp.unit.get("check") else self.profile

    def _estimate(self, comp: Compilation) -> int:
        ident = (self._profile_key(comp), comp.key)
        learned = self.learned.get(ident[0], {}).get(comp.key, self.prior)
        return max(learned, self.raised.get(ident, 0))

    def _finish(self, comp: Compilation, message: dict) -> None:
        ident = (self._profile_key(comp), comp.key)
        cpu = message.get("cpu_s")
        if isinstance(cpu, (int, float)) and 0 <= cpu < 3600:
            self.stats["wrappers_cpu"] += cpu - comp.reported_cpu
            comp.reported_cpu = cpu
        peak_kib = message.get("peak_kib") if isinstance(message.get("peak_kib"), int) else 0
        # Under sccache the wrapper's child is the client: the server's rustc is what was sampled.
        peak = comp.hwm if comp.unit.get("via_server") else max(peak_kib * 1024, comp.hwm)
        if message.get("preempted"):
            self.raised[ident] = max(self.raised.get(ident, 0), int(comp.hwm * GROWTH), comp.estimate)
            if self.victim is comp:
                self.victim_exited_at = time.monotonic()  # its memory is free: judge again on the next sample
        elif message.get("status") == 0 and peak > 0:
            profile_peaks = self.observed.setdefault(ident[0], {})
            profile_peaks[comp.key] = max(profile_peaks.get(comp.key, 0), peak)
            self.finished.add(ident)
        comp.state = "done"
        comp.rustc_pid = None

    # -- the tick -----------------------------------------------------------------------

    def tick(self, admit_only: bool = False) -> None:
        """Sample, preempt, admit, set tokens (``admit_only``: a message arrived, no new sample)."""
        if admit_only:
            sample = getattr(self, "_sample", None)
        else:
            sample = self._sample = self.memory.sample()
            self._account(sample)
        if sample is None:
            self._admit_all()  # memory cannot be read: nothing to govern by
            return
        margin = safety_margin(sample.limit)
        running = [c for c in self.compilations if c.state in ("admitted", "running")]
        pressure = (self._heading_for(sample) < margin or sample.available < margin
                    or sample.stall_fraction >= STALL_PRESSURE)
        if not admit_only:
            self._update_rss(running)
            if pressure:
                self._preempt(running, sample, margin)
        if self.victim is not None and not admit_only and (
                (self.victim_exited_at is not None and sample.at > self.victim_exited_at)
                or time.monotonic() - self.victim_since > PREEMPT_SETTLE_SECONDS):
            self.victim = None
        settling = self.victim is not None
        reserved = sum(max(0, c.estimate - c.rss) for c in running)
        room = sample.available - margin - reserved
        if not (pressure or settling):
            room = self._admit(running, room)
        elif not running:
            room = self._admit([], room)
        self._set_tokens(room, hold=pressure or settling)
        if not admit_only:
            self.interval = self._next_interval(sample, margin, pressure or settling)
            if self.trace is not None:
                self._trace(sample, margin, running, pressure, settling)

    def _next_interval(self, sample, margin: int, alert: bool) -> float:
        """Seconds until the next sample: the time memory needs to fall to the margin at
        the fastest rate it may fall (or faster, as it does lately), within
        ``TICK_SECONDS``..``CALM_TICK_SECONDS``. Sampling is most of the governor's
        own CPU, and far from the margin a tenth of a second buys nothing."""
        if alert:
            return TICK_SECONDS
        heading = self._heading_for(sample)
        falling = max(0.0, (sample.available - heading) / LOOKAHEAD_SECONDS)
        seconds = (min(sample.available, heading) - margin) / max(FASTEST_FALL, falling)
        return min(CALM_TICK_SECONDS, max(TICK_SECONDS, seconds))

    def _trace(self, sample, margin: int, running: list[Compilation], pressure: bool, settling: bool) -> None:
        states = " ".join(f"{c.unit.get('crate')}:{c.state[0]}:{c.rustc_pid}:{c.rss // MIB}/{c.estimate // MIB}"
                          for c in self.compilations if c.unit)
        line = (f"{time.monotonic() - self.began:8.2f} avail={sample.available // MIB} margin={margin // MIB} "
                f"stall={sample.stall_fraction:.2f} pressure={int(pressure)} settling={int(settling)} "
                f"tokens={self.jobserver.circulating}/{self.jobserver.held()} {states}\n")
        try:
            self.trace.write(line)
            self.trace.flush()
        except (OSError, ValueError):
            self.trace = None

    def _heading_for(self, sample) -> int:
        """Available memory ``LOOKAHEAD_SECONDS`` from now if it keeps falling as it did lately."""
        history = self.history
        if not history or history[-1][0] != sample.at:
            history.append((sample.at, sample.available))
            while history and sample.at - history[0][0] > TREND_SECONDS:
                history.pop(0)
        then, before = history[0]
        if sample.at - then < 2 * TICK_SECONDS or before <= sample.available:
            return sample.available
        falling = (before - sample.available) / (sample.at - then)
        return int(sample.available - falling * LOOKAHEAD_SECONDS)

    def _account(self, sample) -> None:
        now = time.monotonic()
        self.stats["ticks"] += 1
        self.stats["token_seconds"] += self.jobserver.held() * (now - self._last_tick)
        self._last_tick = now
        if sample is None:
            return
        stats = self.stats
        stats["limit"] = sample.limit
        stats["margin"] = safety_margin(sample.limit)
        stats["peak_used"] = max(stats["peak_used"], sample.limit - sample.available)
        stats["min_available"] = sample.available if stats["min_available"] is None else min(
            stats["min_available"], sample.available)

    def _update_rss(self, running: list[Compilation]) -> None:
        total = 0
        for comp in running:
            if comp.state != "running":
                continue
            if comp.rustc_pid is None and comp.unit.get("via_server") and self.finder is not None:
                comp.rustc_pid = self.finder.find(comp.unit.get("crate") or "", comp.unit.get("metadata"))
            if comp.rustc_pid is None:
                continue
            memory = process_memory(comp.rustc_pid)
            if memory is None:
                if comp.unit.get("via_server"):
                    # sccache runs rustc more than once per compilation (a dep-info pass
                    # first): the one we watched has ended, find the next.
                    comp.rustc_pid = None
                continue
            comp.rss, hwm = memory
            comp.hwm = max(comp.hwm, hwm)
            total += comp.rss
            if comp.rss * GROWTH > comp.estimate:  # still growing past what was expected
                comp.estimate = int(comp.rss * GROWTH)
        self.stats["peak_rustc"] = max(self.stats["peak_rustc"], total)

    def _preempt(self, running: list[Compilation], sample, margin: int) -> None:
        started = [c for c in running if c.state == "running" and not c.preempting]
        if self.victim is not None or len(started) < 2:
            return  # one at a time; and a lone rustc has nothing to make room for
        victim = max(started, key=lambda c: c.started_at)
        victim.preempting = True
        self.victim, self.victim_since, self.victim_exited_at = victim, time.monotonic(), None
        victim.send("preempt")
        if victim.unit.get("via_server") and self.finder is not None:
            # The server's rustc: the wrapper reaches only its sccache client. Looked up
            # afresh, as the one watched may have been an earlier pass.
            pid = self.finder.find(victim.unit.get("crate") or "", victim.unit.get("metadata")) or victim.rustc_pid
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if sample.stall_fraction >= STALL_PRESSURE:
            why = f"tasks stalled on memory {sample.stall_fraction:.0%} of the time"
        else:
            heading = self._heading_for(sample)
            why = f"{sample.available // MIB} MiB available of {sample.limit // MIB} MiB" + (
                f", falling towards {max(0, heading) // MIB} MiB" if heading < sample.available else "")
        self.preemptions.append({
            "crate": victim.unit.get("crate"), "kind": victim.unit.get("kind"),
            "rss_mib": victim.rss // MIB, "available_mib": sample.available // MIB,
            "at_ms": round((time.monotonic() - self.began) * 1000), "running": len(started),
        })
        self.note(f"memory low ({why}): stopped rustc for {victim.label} at {victim.rss // MIB} MiB, "
                  f"the youngest of {len(started)}; it runs again when memory allows")

    def _admit(self, running: list[Compilation], room: int) -> int:
        waiting = sorted((c for c in self.compilations if c.state == "waiting"),
                         key=lambda c: (c.attempt == 0, c.queued_at))  # reruns first
        alone = not running
        for index, comp in enumerate(waiting):
            if alone or comp.estimate <= room:
                self._go(comp)
                room -= comp.estimate
                alone = False
            elif index == 0 and time.monotonic() - comp.queued_at > BACKFILL_SECONDS:
                break  # the head has waited long enough: let running ones drain for it
        return room

    def _admit_all(self) -> None:
        for comp in self.compilations:
            if comp.state == "waiting":
                self._go(comp)
        if self.jobserver.circulating < self.max_jobs - 1:
            self.jobserver.grant(self.max_jobs - 1 - self.jobserver.circulating)

    def _go(self, comp: Compilation) -> None:
        comp.state = "admitted"
        comp.preempting = False
        self.stats["admitted"] += 1
        if time.monotonic() - comp.queued_at > 2 * TICK_SECONDS:
            self.stats["waited"] += 1
        comp.send("go")

    def _next_estimate(self) -> int:
        """The smallest estimate of a compilation this build may still start."""
        profile = self.build_profile_key
        pending = [estimate for key, estimate in self.learned.get(profile, {}).items()
                   if (profile, key) not in self.finished]
        return max(64 * MIB, min(pending)) if pending else self.prior

    def _set_tokens(self, room: int, hold: bool) -> None:
        held = self.jobserver.held()
        waiting = sum(c.estimate for c in self.compilations if c.state == "waiting")
        new_jobs = 0 if hold else max(0, (room - waiting) // self._next_estimate())
        target = min(self.max_jobs - 1, held + new_jobs)
        if target > self.jobserver.circulating:
            self.jobserver.grant(target - self.jobserver.circulating)
        elif target < self.jobserver.circulating:
            self.jobserver.withdraw(self.jobserver.circulating - target)
        self.stats["max_tokens"] = max(self.stats["max_tokens"], self.jobserver.circulating)

    # -- the result ---------------------------------------------------------------------

    def summary(self) -> dict:
        """What this build's governor did, for the action log."""
        stats = self.stats
        elapsed = max(1e-9, time.monotonic() - self.began)
        return {
            "max_jobs": self.max_jobs,
            "compilations": stats["admitted"],
            "max_concurrent": stats["max_concurrent"],
            "waited_for_memory": stats["waited"],
            "preemptions": list(self.preemptions),
            "tokens": {"max": stats["max_tokens"], "mean_held": round(stats["token_seconds"] / elapsed, 2)},
            "peak_used_mib": stats["peak_used"] // MIB,
            "peak_rustc_mib": stats["peak_rustc"] // MIB,
            "min_available_mib": None if stats["min_available"] is None else stats["min_available"] // MIB,
            "limit_mib": None if stats["limit"] is None else stats["limit"] // MIB,
            "learned": sum(len(crates) for crates in self.observed.values()),
            "failure": self.failure,
            "cost": {"loop_cpu_s": round(stats["loop_cpu"], 3), "wrappers_cpu_s": round(stats["wrappers_cpu"], 3),
                     "cpu_percent": round(100 * (stats["loop_cpu"] + stats["wrappers_cpu"]) / elapsed, 2),
                     "exec_peak_rss_mib": _own_peak_rss() // MIB},
        }


def _own_peak_rss() -> int:
    """This process's peak RSS in bytes (``VmHWM``): exec, governor thread included."""
    memory = process_memory(os.getpid())
    return memory[1] if memory else 0

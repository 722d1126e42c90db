"""The rustc wrapper the governor puts in front of every compilation.

cargo runs ``RUSTC_WRAPPER rustc ARGS...`` once per rustc; ``exec`` points
``RUSTC_WRAPPER`` at a launcher that runs this module with ``python -I -S``, so
it must stay light: standard library only, nothing from ``buildpolicy`` but
``crates``. For a compilation it

1. asks the governor (a unix socket, ``SOCKET_VAR``) for admission, saying
   which crate it is, and waits for ``go``;
2. runs rustc (through the inner wrapper, e.g. sccache, when there is one),
   forwarding rustc's stderr line by line (cargo reads its JSON messages from
   there, pipelining included);
3. reports rustc's peak RSS (``wait4``) and exit status.

rustc stays in cargo's process group, as without the wrapper: a Ctrl-C or
Ctrl-Z at the terminal, or a signal to the whole build (``kill -KILL -PGID``,
``timeout``), reaches it directly, so no rustc outlives an interrupted build.
A signal meant for the wrapper alone is passed on to rustc; one that comes
while no rustc runs (waiting for admission) ends the wrapper at once, and
nothing is run after it. A wrapper whose cargo is gone runs nothing either.

When the governor preempts it, the wrapper kills rustc and everything rustc
started (its linker), drops whatever that attempt still prints, asks for
admission again and reruns rustc; lines the killed attempt already forwarded
are not repeated (rustc's output is deterministic, so the rerun's first lines
are the same). cargo sees one rustc that took longer.

Queries (``rustc -vV``, ``--print``), a missing socket and a governor that is
gone all mean: run rustc as if the wrapper were not there. The wrapper never
fails a build the governor could not serve.
"""

from __future__ import annotations

# The C modules, not json/socket/selectors/signal: those import enum and re, which
# would triple the start-up cost of a process cargo starts for every compilation.
import _signal
import _socket
import os
import select
import sys

from buildpolicy.run.governor.protocol import decode, encode

SOCKET_VAR = "BUILDPOLICY_GOVERNOR_SOCKET"
INNER_VAR = "BUILDPOLICY_GOVERNOR_INNER"
FORWARDED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)


def _exec(command: list[str]) -> int:
    """Become ``command`` (no governor to talk to); 127/126 when it cannot run."""
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        print(f"buildpolicy rustc wrapper: {command[0]}: command not found", file=sys.stderr)
        return 127
    except (OSError, ValueError) as exc:  # ValueError: an empty name or one with a NUL (RUSTC="")
        print(f"buildpolicy rustc wrapper: {command[0]!r}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 126
    return 0  # not reached


class Channel:
    """Messages (``protocol``) over the governor's socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def send(self, op: str, **fields) -> bool:
        """Send one message; False when the governor is gone."""
        try:
            self.sock.sendall(encode(op, **fields))
            return True
        except OSError:
            return False

    def messages(self) -> list[dict] | None:
        """Messages that have arrived (one ``recv``); None when the governor is gone."""
        try:
            data = self.sock.recv(4096)
        except OSError:
            return None
        if not data:
            return None
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        return [message for message in map(decode, lines) if message is not None]

    def wait_for(self, op: str) -> bool:
        """Block until message ``op`` arrives; False when the governor is gone."""
        while True:
            messages = self.messages()
            if messages is None:
                return False
            if any(m["op"] == op for m in messages):
                return True


class Forwarder:
    """rustc's stderr, forwarded line by line, without repeating a rerun's known prefix."""

    def __init__(self, out_fd: int):
        self.out_fd = out_fd
        self.forwarded: list[bytes] = []  # every line forwarded so far, in order
        self.matched = 0  # lines of this attempt that repeated ``forwarded``
        self.diverged = False
        self.partial = b""

    def new_attempt(self) -> None:
        """A rerun starts: its first lines are expected to repeat what was forwarded."""
        self.matched = 0
        self.diverged = False
        self.partial = b""

    def feed(self, data: bytes) -> None:
        """Forward the complete lines in ``data``."""
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            self._line(line + b"\n")

    def finish(self) -> None:
        """The attempt ended normally: forward a last line without a newline."""
        if self.partial:
            self._line(self.partial)
            self.partial = b""

    def _line(self, line: bytes) -> None:
        if not self.diverged and self.matched < len(self.forwarded):
            if self.forwarded[self.matched] == line:
                self.matched += 1
                return
            self.diverged = True  # not the same output after all: forward the rest as it comes
        if not self.diverged:
            self.forwarded.append(line)
            self.matched += 1
        _write_all(self.out_fd, line)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except InterruptedError:
            continue
        except OSError:
            return  # cargo closed our stderr: nothing left to tell it
        data = data[written:]


class Compilation:
    """One admitted compilation, run (and rerun after preemption) under the governor."""

    def __init__(self, channel: Channel, unit: dict, command: list[str], parent: int):
        self.channel = channel
        self.unit = unit
        self.command = command
        self.parent = parent  # cargo: when it is gone, nothing is left to compile for
        self.forwarder = Forwarder(2)
        self.child: int | None = None
        self.env = {k: v for k, v in os.environ.items() if k not in (SOCKET_VAR, INNER_VAR)}
        self.governed = True
        self.interrupted: int | None = None  # a signal that came for this compilation: never rerun it

    def run(self) -> int:
        """Run until rustc ends without being preempted; its exit status."""
        for signum in FORWARDED_SIGNALS:
            # One the build ignores (a background job's SIGINT) stays ignored, for rustc too.
            if _signal.getsignal(signum) != _signal.SIG_IGN:
                _signal.signal(signum, self._forward)
        attempt = 0
        while True:
            if self.governed:
                self.governed = self.channel.send("admit", **self.unit, pid=os.getpid(), attempt=attempt)
                self.governed = self.governed and self.channel.wait_for("go")
            if os.getppid() != self.parent:
                # cargo died while this compilation waited (killed, or the terminal closed):
                # the governor's end then reads like "run ungoverned", but there is no build left.
                return 1
            status, peak_kib, preempted = self._attempt()
            if self.governed:
                own = os.times()  # this wrapper's own CPU, for the governor's cost accounting
                self.governed = self.channel.send("exit", status=status, peak_kib=peak_kib, preempted=preempted,
                                                  cpu_s=round(own.user + own.system, 3))
            if self.interrupted is not None:
                # Preempted as the signal came: end as if rustc had died of it (a wait
                # status below 128 is exactly that: death by that signal).
                return self._exit_like(self.interrupted if preempted else status)
            if not preempted:
                return self._exit_like(status)
            attempt += 1
            self.forwarder.new_attempt()

    def _attempt(self) -> tuple[int, int, bool]:
        """Run rustc once: ``(wait status, peak RSS in KiB, preempted)``."""
        read_fd, write_fd = os.pipe()
        # No signal handler may run between the spawn and ``self.child``: it would
        # not know there is a rustc to pass the signal on to.
        _signal.pthread_sigmask(_signal.SIG_BLOCK, FORWARDED_SIGNALS)
        try:
            self.child = os.posix_spawnp(
                self.command[0], self.command, self.env,
                file_actions=[(os.POSIX_SPAWN_DUP2, write_fd, 2), (os.POSIX_SPAWN_CLOSE, read_fd)],
                # Python ignores SIGPIPE and SIGXFSZ; rustc expects the defaults.
                setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
                setsigmask=(),
            )
        except (OSError, ValueError) as exc:  # ValueError: an empty name or one with a NUL (RUSTC="")
            os.close(read_fd)
            os.close(write_fd)
            print(f"buildpolicy rustc wrapper: {self.command[0]!r}: {getattr(exc, 'strerror', None) or exc}",
                  file=sys.stderr)
            return (127 if isinstance(exc, FileNotFoundError) else 126) << 8, 0, False
        finally:
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        os.close(write_fd)
        if self.governed:
            self.governed = self.channel.send("started", rustc_pid=self.child)
        preempted = self._pump(read_fd)
        os.close(read_fd)
        _pid, status, usage = os.wait4(self.child, 0)
        self.child = None
        return status, usage.ru_maxrss, preempted

    def _pump(self, read_fd: int) -> bool:
        """Forward rustc's stderr until it closes; True when the governor preempted it."""
        preempted = False
        poller = select.poll()
        poller.register(read_fd, select.POLLIN)
        if self.governed:
            poller.register(self.channel.sock.fileno(), select.POLLIN)
        while True:
            for fd, _event in poller.poll():
                if fd == read_fd:
                    try:
                        data = os.read(read_fd, 65536)
                    except InterruptedError:
                        continue
                    if not data:
                        if not preempted:
                            self.forwarder.finish()
                        return preempted
                    if not preempted:  # what a killed attempt still prints is dropped
                        self.forwarder.feed(data)
                    continue
                messages = self.channel.messages()
                if messages is None:  # the governor is gone: rustc runs on, ungoverned
                    self.governed = False
                    poller.unregister(fd)
                    continue
                if any(m["op"] == "preempt" for m in messages) and not preempted:
                    preempted = True
                    if self.child is not None:
                        _kill_tree(self.child)

    def _forward(self, signum, _frame) -> None:
        # A signal for the whole process group reaches rustc by itself; one sent to
        # the wrapper alone is passed on. Without a rustc running (waiting for
        # admission, or between a preemption and the rerun) there is nothing to
        # finish: end now, as rustc would have, and never start it.
        self.interrupted = signum
        if self.child is None:
            _die_by(signum)
        try:
            os.kill(self.child, signum)
        except OSError:
            pass

    @staticmethod
    def _exit_like(status: int) -> int:
        """Exit as rustc did: its code, or death by the same signal."""
        if os.WIFSIGNALED(status):
            _die_by(os.WTERMSIG(status))
            return 128 + os.WTERMSIG(status)
        return os.waitstatus_to_exitcode(status)


def _die_by(signum: int) -> None:
    """End this process by signal ``signum`` (so cargo reports it as rustc's death by that signal)."""
    if signum not in (_signal.SIGKILL, _signal.SIGSTOP):  # those two have no handler to reset (EINVAL)
        _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, (signum,))
    sys.stderr.flush()
    os.kill(os.getpid(), signum)


def children_of(pid: int) -> list[int]:
    """The children of ``pid`` (every thread's), from ``/proc``."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                found.extend(int(word) for word in handle.read().split())
        except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN: every parent pid, then
            return _children_by_scan(pid)
        except (OSError, ValueError):
            continue
    return found


def _children_by_scan(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rpartition(b")")[2].split()
            except OSError:
                continue
            if len(fields) > 1 and fields[1] == str(pid).encode():
                found.append(int(entry))
    return found


def _kill_tree(root: int) -> None:
    """Kill ``root`` and everything it started (rustc's linker): each process is stopped
    before its children are read, so none can start another, then all are killed."""
    stopped, queue = [], [root]
    while queue:
        pid = queue.pop()
        if pid in stopped:
            continue
        try:
            os.kill(pid, _signal.SIGSTOP)
        except OSError:
            continue
        stopped.append(pid)
        queue.extend(children_of(pid))
    for pid in stopped:
        try:
            os.kill(pid, _signal.SIGKILL)
        except OSError:
            pass


def _connect(path: str) -> Channel | None:
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.connect(path)
    except OSError:
        return None
    return Channel(sock)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``wrapper RUSTC ARGS...`` as cargo calls a ``RUSTC_WRAPPER``."""
    from buildpolicy.run.governor.crates import unit_of

    parent = os.getppid()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: buildpolicy rustc wrapper RUSTC [ARGS...] (cargo runs it as RUSTC_WRAPPER)", file=sys.stderr)
        return 2
    inner = os.environ.get(INNER_VAR)
    command = [inner, *argv] if inner else argv
    unit = unit_of(argv[1:])
    path = os.environ.get(SOCKET_VAR)
    channel = _connect(path) if unit is not None and path else None
    if channel is None:
        return _exec(command)
    unit["via_server"] = bool(inner)
    unit["package"] = os.environ.get("CARGO_PKG_NAME")  # cargo sets it for every rustc it runs
    return Compilation(channel, unit, command, parent).run()

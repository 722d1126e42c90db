"""The build gate (DESIGN §6 ``gate``): compile-heavy commands run one at a time.

Several worktrees building at once on one machine multiply memory use until
the OOM killer picks a rustc. ``exec`` therefore takes an exclusive ``flock``
on one lock file for each compile-heavy cargo command (``COMPILE_COMMANDS``;
``cargo metadata`` and friends need no gate), prints a note every
``gate_note_interval`` seconds (30) on stderr while it waits, and decides the
job count only *after* the wait: memory freed by the build it waited for is
memory this one may use.

Where the lock lives: ``<state dir>/gate.lock`` by default, one per user
(every worktree and shell of a user shares it). ``gate_lock`` names another
file, e.g. one in a directory shared by all users of a build box; a world-
writable default under /tmp would let any local user block everyone's builds.

Nesting: while the command runs, ``BUILDPOLICY_GATE_HELD=<lock path>:<pid>``
in its environment says which ``exec`` holds the gate. A nested
``buildpolicy exec`` (a build script, an xtask, a shell started by exec) finds
that marker, checks that the pid is one of its ancestors and that the lock is
really held, and inherits the gate instead of waiting for itself forever. A
stale or forged marker (dead pid, not an ancestor, lock free) is ignored.

Who holds the lock: the waiting ``exec`` process itself, on a close-on-exec
descriptor, while the command runs as its child. The descriptor is not
inherited on purpose: cargo starts daemons (an sccache server) that would
otherwise keep the gate locked long after the build. If ``exec`` is killed
with SIGKILL the gate opens early; it never stays shut.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from buildpolicy.model import Decision

GATE_VAR = "BUILDPOLICY_GATE_HELD"
LOCK_NAME = "gate.lock"
HOLDER_LIMIT = 64 << 10  # the holder file names a pid, an argv and a directory
# cargo subcommands that compile (aliases are expanded before the lookup) and
# the common third-party ones that build the project too.
COMPILE_COMMANDS = frozenset({
    "build", "check", "test", "bench", "run", "doc", "clippy", "install", "rustc", "rustdoc", "fix",
    "miri", "nextest", "llvm-cov", "tarpaulin", "udeps", "careful", "fuzz",
})


def lock_path(ctx) -> Path:
    """The gate's lock file: the ``gate_lock`` knob, else ``<state dir>/gate.lock``."""
    configured = ctx.knob("gate_lock")
    if configured:
        home = ctx.environ.get("HOME")  # the caller's home, not this process's
        path = os.path.join(home, configured[2:]) if configured.startswith("~/") and home else configured
        return Path(os.path.abspath(path))
    return Path(ctx.state_dir) / LOCK_NAME


def format_marker(path: Path, pid: int) -> str:
    """The ``BUILDPOLICY_GATE_HELD`` value: ``<lock path>:<pid>``."""
    return f"{path}:{pid}"


def parse_marker(text: str | None) -> tuple[Path, int] | None:
    """``(lock path, pid)`` from a marker, or None when it is malformed."""
    if not text:
        return None
    path, sep, pid = text.rpartition(":")
    if not sep or not path or not pid.isdigit():
        return None
    return Path(path), int(pid)


def is_locked(path: Path) -> bool:
    """Whether some process holds the gate lock ``path`` now (a free or missing lock: False)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not block
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        # flock locks belong to an open file description: this new one conflicts
        # with any holder, even one in this very process.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _self_and_ancestors() -> set[int]:
    import psutil

    pids = {os.getpid()}
    try:
        pids.update(parent.pid for parent in psutil.Process().parents())
    except psutil.Error:
        pass
    return pids


def inherited_holder(environ: Mapping[str, str], path: Path) -> int | None:
    """The pid of the ``exec`` (this one or an ancestor) that holds gate ``path``, per the marker.

    None when there is no marker, it names another lock file, its pid is not
    this process or an ancestor, or the lock is not actually held.
    """
    marker = parse_marker(environ.get(GATE_VAR))
    if marker is None:
        return None
    marked_path, pid = marker
    if os.path.realpath(marked_path) != os.path.realpath(path):
        return None
    # Our own marker (exec re-evaluating after taking the gate) needs no process
    # walk; psutil is imported only for a nested exec.
    if (pid != os.getpid() and pid not in _self_and_ancestors()) or not is_locked(path):
        return None
    return pid


def decide(ctx) -> Decision:
    """The ``gate`` decision: ``disabled``, ``not-needed``, ``inherited`` or ``acquired``.

    ``acquired`` from this hook means "exec takes the gate before deciding
    jobs" (``exec --dry-run`` shows it; ``exec`` then takes it and says how
    long it waited). Only ``exec`` ever takes the gate.
    """
    if ctx.knob("gate") == "off":
        return Decision("gate", None, "disabled", f"knob gate = off ({ctx.knob_source('gate')})")
    if ctx.command != "exec":
        return Decision("gate", None, "not-needed", f"only `exec` takes the build gate; `{ctx.command}` runs nothing")
    if ctx.cargo_argv is None:
        return Decision("gate", None, "not-needed", "not a cargo command")
    command = ctx.fact("cargo.command")
    if command not in COMPILE_COMMANDS:
        return Decision("gate", None, "not-needed", f"cargo {command or '(no command)'} does not compile")
    path = lock_path(ctx)
    if not ctx.knob("gate_lock"):
        from buildpolicy.filestate import unsafe_directory

        # The default lock is this user's own state: not one in a directory another user controls
        # (they could hold it forever). A configured gate_lock may be shared on purpose.
        unsafe = unsafe_directory(path.parent)
        if unsafe is not None:
            return Decision("gate", None, "disabled", f"the default gate lock {path} is not used: {unsafe}")
    holder = inherited_holder(ctx.environ, path)
    if holder == os.getpid():
        return Decision("gate", str(path), "acquired", f"this exec (pid {holder}) holds {path}")
    if holder is not None:
        return Decision(
            "gate", str(path), "inherited",
            f"the enclosing buildpolicy exec (pid {holder}) holds {path}: this nested exec shares it",
        )
    return Decision("gate", str(path), "acquired", f"exec takes {path} for cargo {command} before deciding jobs")


def _format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"


class GateLock:
    """The gate lock of one ``exec``: ``acquire()`` waits with notes, ``release()`` opens it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.holder_file = self.path.with_name(self.path.name + ".holder")
        self.fd: int | None = None

    def acquire(self, note: Callable[[str], None], interval: float, argv=(), cwd: str = "") -> float:
        """Take the lock, waiting as long as it takes; return the seconds waited.

        ``note`` gets a message when the wait starts and every ``interval``
        seconds after. Raises OSError when the lock file cannot be opened.
        """
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Read-only is enough for flock, and lets users share a gate file one of them created.
        # Non-blocking: opening a FIFO planted at the lock's name would wait for a writer forever.
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file")  # exec runs ungated, and says why
        self.fd = fd
        started = time.monotonic()
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note(f"waiting for the build gate {self.path} ({self.describe_holder()})")
            done = threading.Event()
            errors: list[OSError] = []

            def block() -> None:
                # A blocking flock in a helper thread: the main thread stays free to
                # print notes (and to take Ctrl-C, which ends the process).
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX)
                except OSError as exc:
                    errors.append(exc)
                finally:
                    done.set()

            threading.Thread(target=block, name="gate", daemon=True).start()
            while not done.wait(interval):
                waited = _format_duration(time.monotonic() - started)
                note(f"still waiting for the build gate after {waited} ({self.describe_holder()})")
            if errors:
                raise errors[0]
        waited = time.monotonic() - started
        self._write_holder(argv, cwd)
        return waited

    def _write_holder(self, argv, cwd: str) -> None:
        import json

        from buildpolicy.filestate import atomic_write

        from buildpolicy.run.actionlog import redact_argv

        # Readable by every user of a shared gate: no tokens from the command line.
        info = {"pid": os.getpid(), "argv": redact_argv(argv), "cwd": cwd, "since": time.time()}
        try:
            atomic_write(self.holder_file, json.dumps(info).encode())
        except OSError:
            pass  # only used to name the holder in notes

    def describe_holder(self) -> str:
        """Who holds the gate, from the holder file, for the waiting note."""
        info = self._holder_info()
        try:
            pid = int(info["pid"])
            os.kill(pid, 0)
            argv = info.get("argv", [])
            what = " ".join(str(a) for a in argv[:4] if isinstance(a, str)) if isinstance(argv, list) else ""
            since = _format_duration(max(0.0, time.time() - float(info.get("since", time.time()))))
        except (OSError, ValueError, KeyError, TypeError, OverflowError):
            return "held by another process"
        cwd = info.get("cwd")
        where = f" in {cwd}" if isinstance(cwd, str) and cwd else ""
        return f"held by pid {pid}: {what or 'a command'}{where}, for {since}"

    def _holder_info(self) -> dict:
        """The holder file's content; {} when it is missing, not a small regular file, or not JSON.

        Not ``read_state``: a shared gate's holder file belongs to whichever user holds it.
        """
        import json

        from buildpolicy.filestate import read_bounded

        try:
            info = json.loads(read_bounded(self.holder_file, HOLDER_LIMIT))
        except (OSError, ValueError, RecursionError):
            return {}
        return info if isinstance(info, dict) else {}

    def release(self) -> None:
        """Open the gate (closing the descriptor releases the lock)."""
        if self.fd is None:
            return
        try:
            if self._holder_info().get("pid") == os.getpid():
                self.holder_file.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

"""Run a command as a child and become a transparent stand-in for it.

``exec`` used to replace itself with the command (``os.execvpe``). It now
waits for it instead, because only a process that outlives the command can
record its exit status in the action log and hold the build gate for exactly
as long as the command runs. To stay as transparent as ``exec``:

- stdin, stdout and stderr are inherited, not piped: the command sees the
  same terminal (or pipe) and its output is not buffered by us;
- SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to buildpolicy are forwarded to
  the child, and buildpolicy itself does not die of them while it waits
  (Ctrl-C reaches the child from the terminal too; a second copy is
  harmless);
- the exit status is the child's, or ``128 + N`` when signal N killed it (the
  shell convention);
- a command that cannot be found exits 127, one that cannot be run 126.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import os
from collections.abc import Callable, Mapping, Sequence

FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)
EXIT_NOT_FOUND = 127
EXIT_CANNOT_RUN = 126


def status_of(returncode: int) -> int:
    """A shell-style exit status: the code, or 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def run(argv: Sequence[str], env: Mapping[str, str], *, stdout=None, label: str | None = None,
        watch: Callable[[bytes], None] | None = None) -> int:
    """Run ``argv`` with ``env``, forwarding signals; return its shell-style exit status.

    ``stdout`` redirects the child's stdout (e.g. ``2`` to keep rsync's chatter
    off a stdout that belongs to the build); None inherits ours. ``label``
    names the command in "not found" errors (default ``argv[0]``). ``watch``
    gets every chunk of the child's stdout, which is copied through to ours as
    it comes (see ``_Tee``).
    """
    child: list[subprocess.Popen] = []
    pending: list[int] = []

    def forward(signum, _frame):
        if child:
            try:
                child[0].send_signal(signum)
            except ProcessLookupError:
                pass
        else:
            pending.append(signum)  # arrived before the child existed

    # Handlers go in before the child starts, so no signal can slip between
    # Popen and the handler and kill us while the child runs on unsupervised.
    previous = {}
    for signum in FORWARDED:
        try:
            previous[signum] = signal.signal(signum, forward)
        except (ValueError, OSError):  # not the main thread, or not settable
            pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        tee = _Tee(watch) if watch is not None else None
        proc = None
        try:
            # close_fds (the default) keeps our descriptors, such as the gate's
            # lock, out of the child: a daemon it spawns (an sccache server)
            # must not hold the gate forever.
            proc = subprocess.Popen(list(argv), env=dict(env), stdout=tee.child_end if tee else stdout)
        except FileNotFoundError:
            print(f"buildpolicy: error: {label or argv[0]}: command not found", file=sys.stderr)
            return EXIT_NOT_FOUND
        except PermissionError:
            print(f"buildpolicy: error: {label or argv[0]}: permission denied", file=sys.stderr)
            return EXIT_CANNOT_RUN
        except OSError as exc:
            print(f"buildpolicy: error: {label or argv[0]}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        finally:
            if tee is not None:
                tee.started(proc is not None)
        child.append(proc)
        for signum in pending:
            forward(signum, None)
        if tee is not None:
            tee.copy_until_exit(proc)
        # PEP 475: wait() is resumed after each forwarded signal's handler runs.
        return status_of(proc.wait())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Tee:
    """The child's stdout through us: copied to our stdout and shown to a watcher.

    A pseudo-terminal when our stdout is one (the command still sees a terminal:
    colours, progress lines), else a pipe. Copying stops shortly after the child
    exits, even if a daemon it started (an sccache server) still holds the other
    end open.
    """

    def __init__(self, watch: Callable[[bytes], None]):
        self.watch = watch
        self.out = sys.stdout.fileno()
        if os.isatty(self.out):
            import pty

            self.ours, self.child_end = pty.openpty()
        else:
            self.ours, self.child_end = os.pipe()
        os.set_inheritable(self.ours, False)

    def started(self, running: bool) -> None:
        """The child has its end now, or never started (``running`` False): close
        our copy of its end, and with no child our own end too."""
        os.close(self.child_end)
        if not running:
            os.close(self.ours)

    def _pump(self, timeout: float) -> bool:
        """Copy what is there within ``timeout``; False at end of output."""
        import select

        ready, _, _ = select.select([self.ours], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.ours, 65536)
        except OSError:  # EIO: a pseudo-terminal whose other side is closed
            return False
        if not chunk:
            return False
        self.watch(chunk)
        view = memoryview(chunk)
        while view:
            try:
                view = view[os.write(self.out, view):]
            except BrokenPipeError:
                view = view[:0]  # our reader left; keep draining so the child is not blocked
        return True

    def copy_until_exit(self, proc: subprocess.Popen) -> None:
        """Copy until the output ends, or the child has exited and nothing more comes."""
        try:
            while proc.poll() is None:
                if not self._pump(0.1):
                    break
            while self._pump(0.05):
                if proc.poll() is not None and not self._has_data():
                    break
        finally:
            os.close(self.ours)

    def _has_data(self) -> bool:
        import select

        return bool(select.select([self.ours], [], [], 0)[0])

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
from collections.abc import Mapping, Sequence

FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)
EXIT_NOT_FOUND = 127
EXIT_CANNOT_RUN = 126


def status_of(returncode: int) -> int:
    """A shell-style exit status: the code, or 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def run(argv: Sequence[str], env: Mapping[str, str], *, stdout=None, label: str | None = None) -> int:
    """Run ``argv`` with ``env``, forwarding signals; return its shell-style exit status.

    ``stdout`` redirects the child's stdout (e.g. ``2`` to keep rsync's chatter
    off a stdout that belongs to the build); None inherits ours. ``label``
    names the command in "not found" errors (default ``argv[0]``).
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
        try:
            # close_fds (the default) keeps our descriptors, such as the gate's
            # lock, out of the child: a daemon it spawns (an sccache server)
            # must not hold the gate forever.
            proc = subprocess.Popen(list(argv), env=dict(env), stdout=stdout)
        except FileNotFoundError:
            print(f"buildpolicy: error: {label or argv[0]}: command not found", file=sys.stderr)
            return EXIT_NOT_FOUND
        except PermissionError:
            print(f"buildpolicy: error: {label or argv[0]}: permission denied", file=sys.stderr)
            return EXIT_CANNOT_RUN
        except OSError as exc:
            print(f"buildpolicy: error: {label or argv[0]}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        child.append(proc)
        for signum in pending:
            forward(signum, None)
        # PEP 475: wait() is resumed after each forwarded signal's handler runs.
        return status_of(proc.wait())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

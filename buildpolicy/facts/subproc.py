"""Run a short subprocess with a hard timeout; every failure becomes a reason string."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # the warm replay imports this module: no typing, collections or pathlib
if TYPE_CHECKING:  # pragma: no cover - typing only
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

TIMEOUT = 3.0
# Set by the warm `env` replay (buildpolicy.replay.check): a probe that would start a
# process there gives up replaying instead, so the full run decides.
REPLAYING = False


def last_line(stderr: str, returncode: int) -> str:
    """The default failure summary: the last line of stderr."""
    return (stderr.strip().splitlines() or [f"exit status {returncode}"])[-1]


def run_text(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | str | None = None,
             timeout: float = TIMEOUT,
             summarize: Callable[[str, int], str] = last_line) -> tuple[int | None, str, str]:
    """Run ``argv`` and return ``(returncode, stdout, problem)``.

    ``returncode`` is None when the program could not run or timed out, and then
    ``problem`` says why; otherwise ``problem`` is ``summarize(stderr, returncode)``
    of a failure (by default its last stderr line) and empty on success.
    stdin is closed so nothing can wait for input.
    """
    if REPLAYING:
        from buildpolicy.facts.unknown import NotReplayable

        raise NotReplayable(f"a probe would run {argv[0]}")
    import subprocess  # lazy: most runs never start a process

    posix = os.name == "posix"
    try:
        # A session of its own, so a timeout kills grandchildren too (a wrapper
        # script's child would otherwise keep the pipes open).
        proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=posix,
        )
    except OSError as exc:
        return None, "", f"cannot run {argv[0]}: {exc.strerror or exc}"
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9) if posix else proc.kill()
        except OSError:
            pass
        try:
            proc.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        return None, "", f"{argv[0]} did not answer within {timeout:g}s"
    problem = "" if proc.returncode == 0 else summarize(err, proc.returncode)
    return proc.returncode, out, problem

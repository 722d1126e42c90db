"""The governor around one build: set up, hand cargo the environment, tear down.

``exec`` opens a session after the gate and before the command starts. The
session makes a private directory (mode 0700) holding the jobserver FIFO, the
governor's socket and the rustc wrapper's launcher, starts the governor
thread, and gives the variables cargo needs:

- ``CARGO_MAKEFLAGS``: the jobserver (cargo, rustc and build scripts take it);
- ``RUSTC_WRAPPER``: the launcher, which runs ``wrapper.py`` with this
  Python in isolated mode (``-I -S``: no site packages, no environment
  variables, no current directory on the path); a wrapper that was decided
  before (sccache, the user's own) keeps running, inside ours;
- ``BUILDPOLICY_GOVERNOR_SOCKET`` / ``_INNER``: where the governor listens,
  and that inner wrapper.

None of these enter what sccache or cargo fingerprint: sccache leaves
``CARGO_MAKEFLAGS`` out of its key, and cargo does not rebuild when the
wrapper changes (measured). Closing the session stops the thread, records the
peaks it saw, removes the directory and returns the summary for the log.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import buildpolicy
from buildpolicy.run.governor import peaks
from buildpolicy.run.governor.wrapper import INNER_VAR, SOCKET_VAR

MIB = 1 << 20
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


def _private_directory() -> Path:
    """A new 0700 directory whose socket path fits in ``sun_path``."""
    for base in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if base and os.path.isdir(base) and len(base) + 40 < SOCKET_PATH_MAX:
            try:
                return Path(tempfile.mkdtemp(prefix="buildpolicy-governor-", dir=base))
            except OSError:
                continue
    raise OSError("no temporary directory with a short enough path for the governor's socket")


def _write_launcher(directory: Path) -> Path:
    """The executable ``RUSTC_WRAPPER`` cargo runs: this Python, isolated, running the wrapper."""
    package_parent = str(Path(buildpolicy.__file__).resolve().parent.parent)
    body = (
        "import sys\n"
        f"sys.path.insert(0, {package_parent!r})\n"
        "from buildpolicy.run.governor.wrapper import main\n"
        "sys.exit(main())\n"
    )
    python = sys.executable
    launcher = directory / "rustc-wrapper"
    if python and " " not in python and "\t" not in python and len(python) < 200:
        launcher.write_text(f"#!{python} -IS\n{body}")
    else:  # a shebang line cannot carry this path: go through sh
        script = directory / "rustc-wrapper.py"
        script.write_text(body)
        quoted = "'" + python.replace("'", "'\\''") + "'"
        launcher.write_text(f'#!/bin/sh\nexec {quoted} -IS "{script}" "$@"\n')
    launcher.chmod(0o700)
    return launcher


class GovernorSession:
    """The governor of one local cargo build (``open`` it, run the build, ``close`` it)."""

    def __init__(self, *, state_dir: Path, workspace: str, profile: str, check: bool, max_jobs: int,
                 prior_mib: int, note):
        self.state_dir = Path(state_dir)
        self.workspace = workspace
        self.profile = profile
        self.check = check
        self.max_jobs = max_jobs
        self.prior = prior_mib * MIB
        self.note = note
        self.directory: Path | None = None
        self.jobserver = None
        self.governor = None

    def open(self, env: dict[str, str]) -> dict[str, str]:
        """Start the governor; the environment ``env`` becomes for the build. OSError when it cannot."""
        from buildpolicy.run.governor.governor import Governor
        from buildpolicy.run.governor.jobserver import FifoJobserver
        from buildpolicy.run.governor.livemem import LiveMemory
        from buildpolicy.run.governor.procs import ServerRustcFinder

        memory = LiveMemory()
        if not memory.known():
            raise OSError("available memory cannot be read")
        self.directory = _private_directory()
        try:
            self.jobserver = FifoJobserver(self.directory)
            launcher = _write_launcher(self.directory)
            learned = {profile: {key: peaks.estimate_bytes(entry) for key, entry in crates.items()}
                       for profile, crates in peaks.load(self.state_dir, self.workspace).items()}
            self.governor = Governor(
                directory=self.directory, max_jobs=self.max_jobs, jobserver=self.jobserver, memory=memory,
                learned=learned, prior=self.prior, profile=self.profile, check=self.check,
                note=self.note, finder=ServerRustcFinder(),
            )
            trace = os.environ.get("BUILDPOLICY_GOVERNOR_TRACE")
            if trace:
                self.governor.trace = open(trace, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self.governor.start()
        except BaseException:
            self._remove()
            raise
        governed = dict(env)
        inner = governed.get("RUSTC_WRAPPER")
        governed["RUSTC_WRAPPER"] = str(launcher)
        if inner:
            governed[INNER_VAR] = inner
        else:
            governed.pop(INNER_VAR, None)
        governed[SOCKET_VAR] = str(self.governor.socket_path)
        governed["CARGO_MAKEFLAGS"] = self.jobserver.makeflags()
        return governed

    def close(self) -> dict:
        """Stop the governor, keep what it learned; the summary for the action log."""
        summary = self.governor.stop() if self.governor is not None else {}
        if self.governor is not None and self.governor.trace is not None:
            self.governor.trace.close()
        if self.governor is not None and self.governor.observed:
            if not peaks.record(self.state_dir, self.workspace, self.governor.observed):
                self.note(f"cannot record the learned peaks in {peaks.peaks_path(self.state_dir, self.workspace)}")
        self._remove()
        if summary:
            summary["workspace"] = self.workspace
        return summary

    def _remove(self) -> None:
        if self.jobserver is not None:
            self.jobserver.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

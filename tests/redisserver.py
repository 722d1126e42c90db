"""A real redis-server for tests: a free 127.0.0.1 port and a unix socket in a tmp dir, stopped afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.sshd import terminate


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Redis:
    """One redis-server process (no persistence), on ``port`` and ``unix_socket``."""

    def __init__(self, directory: Path):
        binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
        if binary is None:
            message = "redis-server is not installed: install the Debian package redis-server (scripts/install-system-deps.sh)"
            if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on"):
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.unix_socket = directory / "redis.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Redis:
        """Start it and wait until it answers PING."""
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket", str(self.unix_socket),
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", str(self.directory),
             "--logfile", str(self.directory / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(self.directory / 'redis.log').read_text(errors='replace')[-500:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop it (and wait), if it runs."""
        terminate(self.proc)
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"


@pytest.fixture
def redis(tmp_path):
    """A running redis-server, stopped after the test."""
    server = Redis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()

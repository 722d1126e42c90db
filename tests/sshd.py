"""Loopback-only remote hosts for the remote-build tests.

- ``SSHServer``: a real OpenSSH ``sshd`` on 127.0.0.1 and a free high port,
  running as the current user in the foreground (``-D -e``) with a host key,
  a user key, ``authorized_keys``, pid file and log all in a temporary
  directory;
- ``closed_port()``: a port nothing listens on (the kernel answers RST:
  "connection refused");
- ``SilentPort``: a listener with backlog 0 whose accept queue is filled, so
  the kernel drops new SYNs and a connect gets no answer at all (a host that
  is down or firewalled);
- ``write_ssh_config()``: an ssh config mapping aliases to those endpoints,
  for the ``remote_ssh_config`` knob.

Nothing here contacts an address outside 127.0.0.0/8. Without sshd, ssh,
ssh-keygen or rsync the tests are skipped, except under ``CI``, where they
fail naming the Debian package to install (scripts/install-system-deps.sh).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
# program -> Debian package (scripts/install-system-deps.sh installs them)
PACKAGES = {"sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client", "rsync": "rsync"}


def find_program(name: str) -> str | None:
    """The path of ``name`` on PATH, or in /usr/sbin for sshd (a non-login PATH may lack it)."""
    found = shutil.which(name)
    if found is None and name == "sshd" and os.access(SSHD, os.X_OK):
        found = SSHD
    return found


def require(*names: str) -> dict[str, str]:
    """Paths of the programs a test needs; skip without them, or fail under CI naming the package."""
    missing = [name for name in names if find_program(name) is None]
    if missing:
        packages = sorted({PACKAGES.get(name, name) for name in missing})
        message = f"missing {', '.join(missing)}: install the Debian package(s) {', '.join(packages)} (scripts/install-system-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return {name: find_program(name) for name in names}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def closed_port() -> int:
    """A port on 127.0.0.1 with no listener: connecting is refused at once."""
    return free_port()


class SilentPort:
    """A loopback port whose connects are never answered (SYNs dropped).

    A listening socket with backlog 0 takes one connection into its accept
    queue; with the queue full the kernel drops further SYNs, so a client
    waits for its own timeout, exactly like a host that is off the network.
    The filler connections are made here and never accepted.
    """

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect((LOOPBACK, self.port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)
        time.sleep(0.05)
        self._check_silent()

    def _check_silent(self) -> None:
        probe = socket.socket()
        probe.settimeout(0.2)
        try:
            probe.connect((LOOPBACK, self.port))
        except (TimeoutError, socket.timeout):
            return
        finally:
            probe.close()
        raise RuntimeError("the silent port answered: this kernel does not drop SYNs on a full accept queue")

    def close(self) -> None:
        """Close the fillers and the listener."""
        for sock in self.fillers:
            sock.close()
        self.listener.close()


class SSHServer:
    """A real sshd on 127.0.0.1 for the current user, configured entirely in ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.user_key = self.root / "id_ed25519"
        self.known_hosts = self.root / "known_hosts"
        self.log = self.root / "sshd.log"

    def start(self) -> SSHServer:
        """Generate keys and config, start sshd, and wait until a login works."""
        tools = require("sshd", "ssh", "ssh-keygen")
        for key in (self.root / "host_ed25519", self.user_key):
            if not key.exists():
                subprocess.run([tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-C", "buildpolicy-test", "-f", str(key)],
                               check=True, stdin=subprocess.DEVNULL, timeout=30)
        (self.root / "authorized_keys").write_text((self.root / "id_ed25519.pub").read_text())
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            # sshd started as root insists on its privilege-separation directory
            # (the service unit creates it); it is empty and harmless.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        last_error = ""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            config = self.root / "sshd_config"
            config.write_text("\n".join([
                f"Port {self.port}",
                f"ListenAddress {LOOPBACK}",
                f"HostKey {self.root / 'host_ed25519'}",
                f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                f"PidFile {self.root / 'sshd.pid'}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "UseDNS no",
                "PrintMotd no",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "LogLevel VERBOSE",
                "",
            ]))
            log = open(self.log, "ab")
            self.proc = subprocess.Popen([tools["sshd"], "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
            log.close()
            if self._wait_listening(10.0):
                break
            last_error = self.log.read_text(errors="replace")[-2000:]
            self.stop()
        else:
            raise RuntimeError(f"sshd did not start:\n{last_error}")
        self._wait_login()
        return self

    def _wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def _wait_login(self) -> None:
        config = write_ssh_config(self.root / "check_config", {"check": self.port}, self)
        proc = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "--", "check", "true"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"ssh login to the test sshd failed: {proc.stderr}\n{self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        """Stop sshd (its running sessions end with it)."""
        terminate(self.proc)
        self.proc = None


def terminate(proc: subprocess.Popen | None) -> None:
    """End a server the tests started: SIGTERM, then SIGKILL after 10 s; wait for it."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def write_ssh_config(path: Path, aliases: dict[str, int], server: SSHServer | None = None,
                     extra: dict[str, list[str]] | None = None) -> Path:
    """An ssh config: each alias → 127.0.0.1 on its port (with the server's user key, if any).

    ``extra`` adds lines to an alias (``ProxyCommand …``). Host keys are
    accepted into a known-hosts file next to the config, never the user's.
    """
    known_hosts = server.known_hosts if server else path.with_name(path.name + ".known_hosts")
    blocks = []
    for alias, port in aliases.items():
        lines = [
            f"Host {alias}",
            f"  HostName {LOOPBACK}",
            f"  Port {port}",
            *([f"  IdentityFile {server.user_key}", "  IdentitiesOnly yes"] if server else []),
            "  StrictHostKeyChecking no",
            f"  UserKnownHostsFile {known_hosts}",
            "  GlobalKnownHostsFile /dev/null",
            "  LogLevel ERROR",
            *(f"  {line}" for line in (extra or {}).get(alias, [])),
        ]
        blocks.append("\n".join(lines))
    path.write_text("\n\n".join(blocks) + "\n")
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A running loopback sshd shared by one test module."""
    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def silent_port():
    """A port on 127.0.0.1 that never answers."""
    port = SilentPort()
    yield port.port
    port.close()

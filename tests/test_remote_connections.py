"""One ssh connection per remote `exec`, sync progress on a terminal, and `env` from
the records `exec` leaves (issue 12 item 7), against a real sshd on 127.0.0.1.

sshd runs with ``LogLevel VERBOSE``: it logs every login (``Accepted publickey
… port P``), every session (``Starting session: … port P``) and every TCP
connection (``Connection from …``), which is what these tests count.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from buildpolicy.run.remote.control import SOCKET_LIMIT, ControlDir
from tests.sshd import silent_port, sshd  # noqa: F401 - fixtures
from tests.test_remote_sshd import crate, hosts, sets  # noqa: F401 - fixtures

LOGIN = re.compile(r"Accepted publickey for \S+ from 127\.0\.0\.1 port (\d+)")
SESSION = re.compile(r"Starting session: .* from 127\.0\.0\.1 port (\d+)")


def log_since(sshd, offset: int) -> str:
    return sshd.log.read_bytes()[offset:].decode(errors="replace")


@pytest.fixture
def runtime_dir():
    """A short, empty XDG_RUNTIME_DIR: where exec makes its private socket directory."""
    path = Path(tempfile.mkdtemp(prefix="bprt-", dir="/tmp"))
    yield path
    for child in path.iterdir():
        if child.is_dir():
            for inner in child.iterdir():
                inner.unlink()
            child.rmdir()
    path.rmdir()


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def test_a_remote_build_logs_in_once_for_all_four_steps(cli, crate, hosts, tmp_path, sshd, runtime_dir):
    args = sets(hosts, tmp_path / "trees", "up")
    offset = sshd.log.stat().st_size
    proc = cli("exec", *args, "--", "cargo", "build", "--offline", cwd=crate, env={"XDG_RUNTIME_DIR": str(runtime_dir)})
    assert proc.returncode == 0, proc.stderr
    assert (crate / "target" / "debug" / "hello").is_file()
    log = log_since(sshd, offset)
    logins = LOGIN.findall(log)
    sessions = SESSION.findall(log)
    # preflight, rsync, the build, the sync back: four sessions over one login.
    assert len(logins) == 1, log
    assert len(sessions) == 4 and set(sessions) == set(logins), log
    # The master is stopped and its private directory removed when exec ends.
    assert list(runtime_dir.iterdir()) == []
    assert processes_mentioning(str(runtime_dir)) == []


def test_a_command_run_here_does_not_inherit_the_shared_connection(cli, crate, hosts, tmp_path, sshd, runtime_dir):
    # A non-cargo command runs here with the chosen host exported: the preflight's master
    # is closed (and its directory gone) before the command starts.
    args = sets(hosts, tmp_path / "trees", "up")
    script = 'printf "%s|" "$BUILDPOLICY_REMOTE_HOST"; ls -A "$XDG_RUNTIME_DIR"; pgrep -f "$XDG_RUNTIME_DIR/bp-ssh" || true'
    proc = cli("exec", *args, "--", "sh", "-c", script, cwd=crate, env={"XDG_RUNTIME_DIR": str(runtime_dir)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "up|"


def test_env_uses_what_exec_recorded_without_connecting(cli, crate, hosts, tmp_path, sshd):
    args = sets(hosts, tmp_path / "trees", "up")
    cli("exec", "--dry-run", *args, "--", "cargo", "build", "--offline", cwd=crate, check=True)
    offset = sshd.log.stat().st_size
    env = cli("env", "--format", "json", *args, cwd=crate, check=True)
    assert json.loads(env.stdout)["set"]["BUILDPOLICY_REMOTE_HOST"] == "up"
    assert "Connection from" not in log_since(sshd, offset)


def read_pty(master: int, proc: subprocess.Popen) -> str:
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            raise AssertionError("no output for 120 s:\n" + b"".join(chunks).decode(errors="replace"))
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    return b"".join(chunks).decode(errors="replace")


def test_sync_shows_bytes_and_files_on_a_terminal_only(cli, crate, hosts, tmp_path, base_env):
    args = sets(hosts, tmp_path / "trees", "up")
    (crate / "data.bin").write_bytes(os.urandom(200_000))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "buildpolicy", "exec", *args, "--", "cargo", "build", "--offline"],
                            cwd=crate, env=base_env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        out = read_pty(master, proc)
    finally:
        os.close(master)
    assert proc.returncode == 0, out
    # rsync --info=progress2: bytes sent, percentage, and the file counter (xfr#N, to-chk=R/T).
    progress = re.findall(r"([\d,]+)\s+100%\s+\S+/s\s+\S+\s+\(xfr#(\d+), to-chk=0/(\d+)\)", out)
    assert progress, out
    sent, files, total = progress[0]
    assert int(sent.replace(",", "")) >= 200_000 and int(files) >= 3 and int(total) >= 3
    # Piped: no progress at all, and stdout still carries nothing but the build's.
    (crate / "data.bin").write_bytes(os.urandom(200_000))
    piped = cli("exec", *args, "--", "cargo", "build", "--offline", cwd=crate)
    assert piped.returncode == 0 and piped.stdout == ""
    assert "to-chk" not in piped.stderr and "xfr#" not in piped.stderr


def test_the_socket_directory_is_private_and_short(tmp_path):
    control = ControlDir({"XDG_RUNTIME_DIR": str(tmp_path / ("x" * 120))})  # too long for a socket path
    options = control.options("ssh", ["-o", "BatchMode=yes"], None, "build1")
    path = next(o.split("=", 1)[1] for o in options if o.startswith("ControlPath="))
    directory = Path(path).parent
    assert directory.parent == Path("/tmp") and len(path) + 17 <= SOCKET_LIMIT
    assert (directory.stat().st_mode & 0o777) == 0o700 and directory.stat().st_uid == os.getuid()
    assert "ControlMaster=auto" in options and control.options("ssh", [], None, "build1") == options
    assert control.options("ssh", [], None, "build2") != options  # one master per host
    control.close()
    assert not directory.exists()

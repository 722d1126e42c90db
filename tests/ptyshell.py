"""Drive a real interactive shell (bash -i, zsh -i, fish -i) through a pseudo-terminal.

The shell reads its own rc files and shows a prompt before every line, so
prompt hooks run exactly as they do for a user. ``run(line)`` types one line
followed by an ``echo`` of a token written so that only its *output* contains
the token (``BPT""7END`` is typed, ``BPT7END`` printed), and waits for it.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import time


class InteractiveShell:
    """One interactive shell process on a pty; ``close()`` ends it."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, timeout: float = 120.0):
        self.timeout = timeout
        self.output = b""
        self.count = 0
        pid, fd = pty.fork()
        if pid == 0:  # the child: only chdir and exec
            try:
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd

    def send(self, text: str) -> None:
        """Type ``text`` (include the newline)."""
        os.write(self.fd, text.encode())

    def run(self, line: str) -> str:
        """Type ``line`` and wait until it has run; return what the terminal showed meanwhile.

        The next line is read only after the shell's next prompt (and its hooks).
        """
        self.count += 1
        start = len(self.output)
        self.send(f'{line}; echo BPT""{self.count}END\n')
        self.expect(f"BPT{self.count}END".encode(), start)
        return self.output[start:].decode(errors="replace")

    def expect(self, token: bytes, start: int = 0) -> None:
        """Read the terminal until ``token`` appears after offset ``start``."""
        deadline = time.monotonic() + self.timeout
        while token not in self.output[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {token!r}; terminal so far:\n"
                                     + self.output[-3000:].decode(errors="replace"))
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the shell is gone
                chunk = b""
            if not chunk:
                raise AssertionError("the shell exited; terminal:\n" + self.output[-3000:].decode(errors="replace"))
            self.output += chunk

    def close(self) -> None:
        """End the shell (SIGKILL after a polite exit) and the pty."""
        try:
            self.send("exit\n")
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pid, _status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def read_env0(path) -> dict[str, str]:
    """An ``env -0`` listing as a dict."""
    data = open(path, "rb").read().decode("utf-8", "surrogateescape")
    return dict(entry.split("=", 1) for entry in data.split("\0") if entry)

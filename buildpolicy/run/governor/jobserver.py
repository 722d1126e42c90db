"""A GNU make jobserver the governor controls: a named FIFO holding tokens.

cargo (and rustc, and build scripts' ``cc``) take one token from the jobserver
they inherit (``CARGO_MAKEFLAGS``) for each job beyond the first, and write it
back when the job ends. Measured with the stable and the nightly toolchain:
both accept the pipe form and the FIFO form; with an inherited jobserver cargo
ignores ``-j`` (so the governor applies it), and a jobserver holding 0 tokens
runs one rustc at a time.

The FIFO form is used: it needs no inherited descriptors, so every process
between cargo and rustc (the governor's rustc wrapper, sccache) may close
descriptors as it likes. The governor keeps its own read-write descriptor:
it grants tokens by writing them and takes them back, when memory gets
tight, by reading tokens that were returned.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
from pathlib import Path

TOKEN = b"+"


class FifoJobserver:
    """A jobserver FIFO in ``directory`` (a private directory of the governor)."""

    def __init__(self, directory: Path):
        self.path = directory / "jobserver.fifo"
        os.mkfifo(self.path, 0o600)
        # O_RDWR: opening never blocks and the FIFO never reads end-of-file.
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.circulating = 0  # tokens granted and not taken back: in the FIFO or held by a job

    def makeflags(self) -> str:
        """The ``CARGO_MAKEFLAGS`` value that hands this jobserver to cargo."""
        return f"-j --jobserver-auth=fifo:{self.path}"

    def idle(self) -> int:
        """Tokens in the FIFO now: granted, but held by no job."""
        try:
            raw = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return struct.unpack("i", raw)[0]

    def held(self) -> int:
        """Tokens jobs hold now."""
        return max(0, self.circulating - self.idle())

    def grant(self, count: int) -> None:
        """Put ``count`` more tokens into circulation."""
        if count > 0:
            written = os.write(self.fd, TOKEN * count)
            self.circulating += written

    def withdraw(self, count: int) -> int:
        """Take back up to ``count`` idle tokens; how many were taken."""
        if count <= 0:
            return 0
        try:
            taken = len(os.read(self.fd, count))
        except BlockingIOError:
            return 0
        self.circulating -= taken
        return taken

    def close(self) -> None:
        """Close and remove the FIFO (jobs still running keep their own descriptors)."""
        try:
            os.close(self.fd)
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass

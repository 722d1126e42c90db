"""One ssh connection per ``exec``: a shared ssh master (ControlMaster) per build host.

A remote build used to open four ssh connections (preflight, rsync, the run,
the sync back), each paying for a TCP handshake, a key exchange and a login.
Inside one ``exec`` the preflight now starts a master connection
(``ControlMaster=auto`` with ``ControlPersist``) whose socket lives in a
private directory made for this ``exec``; rsync's ``-e ssh``, the remote run
and the sync back pass the same ``ControlPath`` and ride that connection. The
end of the ``exec`` stops every master (``ssh -O exit``) and removes the
directory.

The directory is ``mkdtemp`` (mode 0700, a random name no other user can
predict or pre-create) under ``$XDG_RUNTIME_DIR`` or ``/tmp``, whichever keeps
the socket path short: a unix socket path is limited to about 100 bytes
(``sun_path``), and ssh adds a 17-character suffix while it creates the socket.
``ControlPersist`` is a backstop, not the lifetime: if ``exec`` is killed
before it can close the master, the master exits after that many idle seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

PERSIST_SECONDS = 120  # idle seconds before an orphaned master exits on its own
SOCKET_LIMIT = 100  # bytes of a socket path, below Linux's 108 and macOS's 104
SSH_TEMP_SUFFIX = 17  # a dot and 16 random characters, which ssh appends to the path while it binds the socket
CLOSE_TIMEOUT = 5.0


class ControlDir:
    """The private socket directory of one ``exec`` and the masters started in it."""

    def __init__(self, environ: Mapping[str, str]):
        self.path: str | None = None
        self._sockets: dict[tuple[str | None, str], str] = {}  # (ssh config, alias) -> socket path
        self._closers: dict[str, list[str]] = {}  # socket path -> `ssh -O exit` argv
        self._environ = dict(environ)

    def _directory(self) -> str | None:
        if self.path is None:
            for base in (self._environ.get("XDG_RUNTIME_DIR"), "/tmp"):
                # mkdtemp adds 8 characters after the prefix; the socket name is a number.
                longest = len(base or "") + len("/bp-ssh-") + 8 + len("/99") + SSH_TEMP_SUFFIX
                if not base or not os.path.isabs(base) or not os.path.isdir(base) or longest > SOCKET_LIMIT:
                    continue
                try:
                    self.path = tempfile.mkdtemp(prefix="bp-ssh-", dir=base)
                    break
                except OSError:
                    continue
        return self.path

    def options(self, ssh: str, base_options: Sequence[str], config: str | None, alias: str) -> list[str]:
        """The ``-o`` options that make an ssh call to ``alias`` share this exec's master.

        Empty when no private directory could be made: the call then opens its
        own connection, as before.
        """
        key = (config, alias)
        socket_path = self._sockets.get(key)
        if socket_path is None:
            directory = self._directory()
            if directory is None:
                return []
            socket_path = os.path.join(directory, str(len(self._sockets)))
            self._sockets[key] = socket_path
            self._closers[socket_path] = [ssh, *base_options, "-o", f"ControlPath={socket_path}", "-O", "exit", "--", alias]
        return ["-o", "ControlMaster=auto", "-o", f"ControlPath={socket_path}", "-o", f"ControlPersist={PERSIST_SECONDS}"]

    def close(self) -> None:
        """Stop every master started here (``ssh -O exit``) and remove the directory."""
        for socket_path, argv in self._closers.items():
            if not os.path.exists(socket_path):
                continue  # never started (the host was down), or already gone
            try:
                subprocess.run(argv, env=self._environ, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=CLOSE_TIMEOUT, check=False)
            except (OSError, subprocess.TimeoutExpired):
                pass  # ControlPersist ends it after PERSIST_SECONDS idle
        self._closers.clear()
        self._sockets.clear()
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None


def session_control(environ: Mapping[str, str]) -> ControlDir | None:
    """The ``ControlDir`` of the enclosing ``exec`` (made on first use), or None outside one.

    ``explain`` and ``env`` have no session: their probes use plain connections.
    """
    from buildpolicy.run.remote.session import current_session, on_release

    session = current_session()
    if session is None:
        return None
    control = session.get(ControlDir)
    if control is None:
        control = session[ControlDir] = ControlDir(environ)
        on_release(control.close)
    return control

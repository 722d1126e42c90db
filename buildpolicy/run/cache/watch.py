"""``exec``'s watch on a shared backend while the build runs (DESIGN §12: a backend that dies mid-build).

sccache 0.16 has no setting for it: once its server runs with a backend that
dies, every cache read and write waits about 30 s (its Redis pool's connection
timeout), so a 2 s build takes minutes. While cargo runs, a thread asks the
backend in its protocol every :data:`INTERVAL` seconds; the first answer that
says down is recorded (``reach.Records``), which creates the down marker the
key wrapper tests before each compilation: from then on compilations go to the
local server, and the next prompt or exec decides ``fallback-local:<backend>-down``.
Then the backend's server is asked to stop, so compilations still waiting on
the dead backend end now (sccache's client compiles them itself: the wrapper
sets ``SCCACHE_IGNORE_SERVER_IO_ERROR``) instead of after their 30 s.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from buildpolicy.run.cache import backends, reach, server

INTERVAL = 1.0


class BackendWatch:
    """Probe the backend of a shared-cache build until it stops; record the first failure."""

    def __init__(self, backend: backends.Backend, environ: Mapping[str, str], state_dir, timeout: float,
                 sccache: str, server_env: Mapping[str, str]):
        self.backend = backend
        self.environ = dict(environ)
        self.state_dir = state_dir
        self.timeout = timeout
        self.sccache = sccache
        self.server_env = dict(server_env)
        self.down: reach.Reach | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="buildpolicy-backend-watch", daemon=True)

    def start(self) -> BackendWatch:
        """Start watching."""
        self._thread.start()
        return self

    def stop(self) -> reach.Reach | None:
        """Stop watching; the failure seen, if any."""
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)
        return self.down

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            found = reach.probe(self.backend, self.environ, self.timeout)
            if found.ok:
                continue
            self.down = found
            reach.Records(self.state_dir).put(self.backend.probe_key, found)
            try:
                server.stop(self.sccache, self.server_env)
            except (OSError, ValueError, Exception):  # noqa: BLE001 - the watch must never take exec down
                pass
            return


def start_for(result, plan) -> BackendWatch | None:
    """A running watch when ``plan`` builds here with a shared backend that is up, else None."""
    decision = result.decisions.get("sccache")
    if decision is None or not decision.value or plan.execution.get("mode") == "remote":
        return None
    knob = result.knobs.get("sccache_backend")
    try:
        backend = backends.parse(knob.value if knob is not None else "local")
    except backends.BackendError:
        return None
    # In use: shared, and handed to sccache (enabled:<backend>…, or fallback-local:dist-down with it).
    in_use = backend.shared and all(plan.env.get(k) == v for k, v in backend.variables)
    if not in_use or not plan.env.get(server.UDS_VAR):
        return None
    timeout_knob = result.knobs.get("remote_tcp_timeout")
    timeout = float(timeout_knob.value) if timeout_knob is not None and timeout_knob.value else 1.0
    return BackendWatch(backend, result.context.environ, result.paths.state_dir, timeout, str(decision.value),
                        plan.env).start()

"""The per-``exec`` memo of host choices, apart from the (heavy) remote module.

One exec evaluates twice when it waits for the build gate (jobs are decided
after the wait); both passes must see the same host choice, and probing twice
would double the cost. ``probe_session()`` scopes that memo to one exec.
``exec`` enters it on every run, so it lives here: importing
``buildpolicy.run.remote`` costs more than a local build's whole decision.

The session also owns what its probes opened (the shared ssh connections of
``control``): ``release()`` closes them, at the latest when the session ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_session: dict[Any, Any] | None = None
_RELEASE = "release callbacks"


def current_session() -> dict[Any, Any] | None:
    """The memo of the enclosing ``probe_session``, or None outside one."""
    return _session


def on_release(callback: Callable[[], None]) -> None:
    """Run ``callback`` when the current session releases its connections."""
    if _session is not None:
        _session.setdefault(_RELEASE, []).append(callback)


def release() -> None:
    """Close what the current session's probes opened (idempotent).

    ``exec`` calls it before running a command here: shared ssh connections
    serve only a remote build, and a local command must not inherit them.
    """
    if _session is None:
        return
    for callback in _session.pop(_RELEASE, []):
        try:
            callback()
        except Exception:  # noqa: BLE001 - closing is best effort; the run goes on
            pass


class probe_session:
    """Context manager: inside it, identical host choices are probed once (one ``exec``)."""

    def __enter__(self):
        global _session
        self._outer = _session
        if _session is None:
            _session = {}
        return self

    def __exit__(self, *exc):
        global _session
        if self._outer is None:
            release()
        _session = self._outer
        return False

"""The per-``exec`` memo of host choices, apart from the (heavy) remote module.

One exec evaluates twice when it waits for the build gate (jobs are decided
after the wait); both passes must see the same host choice, and probing twice
would double the cost. ``probe_session()`` scopes that memo to one exec.
``exec`` enters it on every run, so it lives here: importing
``buildpolicy.run.remote`` costs more than a local build's whole decision.
"""

from __future__ import annotations

from typing import Any

_session: dict[Any, Any] | None = None


def current_session() -> dict[Any, Any] | None:
    """The memo of the enclosing ``probe_session``, or None outside one."""
    return _session


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
        _session = self._outer
        return False

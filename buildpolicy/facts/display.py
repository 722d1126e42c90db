"""How fact values are shown to people (``explain``, ``facts``, rule notes)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.sizes import format_size


def format_fact(value: Any, kind: str | None = None) -> str:
    """Show a fact value; sizes also in binary units."""
    if value is None:
        return "unknown"
    if kind == "size" and isinstance(value, int):
        return f"{value} ({format_size(value)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)

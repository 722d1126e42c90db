"""Problems (``Diagnostic``\\ s or located strings) as JSON objects for ``check``/``test --format json``."""

from __future__ import annotations

from typing import Any

from buildpolicy.errors import Diagnostic


def problem_json(message) -> dict[str, Any]:
    """``{"file", "line", "col", "message", "detail"}`` of one problem.

    A plain string that starts with a location (``path:line:col: …``, as knob errors
    do) is split the same way; any other string has no location (nulls).
    """
    if isinstance(message, Diagnostic):
        return {"file": message.file, "line": message.line, "col": message.col, "message": message.message,
                "detail": list(message.detail)}
    text = str(message)
    head, _, rest = text.partition("\n")
    file, line, col, body = _split_location(head)
    return {"file": file, "line": line, "col": col, "message": body, "detail": rest.splitlines() if rest else []}


def _split_location(text: str) -> tuple[str | None, int | None, int | None, str]:
    """``("a.toml", 3, 5, "msg")`` from ``"a.toml:3:5: msg"``; no location when there is none."""
    import re

    found = re.match(r"^(?P<file>[^\s:][^:]*?\.toml):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<message>.*)$", text, re.S)
    if found is None:
        return None, None, None, text
    col = found.group("col")
    return found.group("file"), int(found.group("line")), int(col) if col else None, found.group("message")

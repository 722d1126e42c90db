"""The messages between the governor and its rustc wrappers: one line each.

``op key=value key=value\\n``. Values are crate names, kinds, hashes and numbers:
nothing with spaces; booleans are ``1``/``0``, None is empty. Standard library only,
and not even ``json``: the wrapper starts once per compilation and ``json``
imports ``re`` and ``enum``, which would triple its start-up cost.

Wrapper → governor: ``admit`` (crate, kind, check, metadata, via_server, pid,
attempt), ``started`` (rustc_pid), ``exit`` (status, peak_kib, preempted, cpu_s).
Governor → wrapper: ``go``, ``preempt``.
"""

from __future__ import annotations

INTEGERS = frozenset({"pid", "attempt", "status", "peak_kib", "rustc_pid"})
BOOLEANS = frozenset({"check", "via_server", "preempted"})
FLOATS = frozenset({"cpu_s"})


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    # Never expected (crate names are identifiers), but a space or "=" must not split a field.
    return "".join("?" if ch.isspace() or ch == "=" else ch for ch in text)


def encode(op: str, **fields) -> bytes:
    """One message as a line."""
    return (" ".join([op, *(f"{key}={_text(value)}" for key, value in fields.items())]) + "\n").encode()


def decode(line: bytes) -> dict | None:
    """One line as ``{"op": …, key: value}`` with typed values; None when it is not a message."""
    try:
        words = line.decode("utf-8").split()
    except UnicodeDecodeError:
        return None
    if not words:
        return None
    message: dict = {"op": words[0]}
    for word in words[1:]:
        key, sep, text = word.partition("=")
        if not sep:
            continue
        try:
            if text == "":
                value = None
            elif key in INTEGERS:
                value = int(text)
            elif key in FLOATS:
                value = float(text)
            elif key in BOOLEANS:
                value = text == "1"
            else:
                value = text
        except ValueError:
            value = None
        message[key] = value
    return message

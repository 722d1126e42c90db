"""Size literals: ``512MiB``, ``24GiB``, ``1.5GB``, ``100K`` and plain byte counts."""

from __future__ import annotations

import functools
import math
import re

_UNITS = {
    "": 1,
    "b": 1,
    # "KB"/"GB" are decimal and "KiB"/"GiB" binary, as written. A bare letter
    # ("16G", as docker and ulimit take it) means the binary unit.
    "k": 1 << 10, "kb": 1000, "kib": 1 << 10,
    "m": 1 << 20, "mb": 1000**2, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1000**4, "tib": 1 << 40,
}

@functools.cache
def _size_re():
    # Compiled on first use: most runs parse no size string.
    return re.compile(r"(?i)^\s*(\d+(?:\.\d+)?|\.\d+)\s*(b|kib|kb|k|mib|mb|m|gib|gb|g|tib|tb|t)?\s*$")
ALLOWED = "a byte count or a size such as 512MiB, 24GiB, 1.5GB (units B, K/KiB, KB, M/MiB, MB, G/GiB, GB, T/TiB, TB)"


def parse_size(text: str | int | float) -> int:
    """Return the number of bytes a size literal or number denotes.

    Raises ValueError (with the allowed forms in the message) when it is not a size.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected {ALLOWED}, got {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a size cannot be negative: {text}")
        return text
    if isinstance(text, float):
        if text < 0:
            raise ValueError(f"a size cannot be negative: {text}")
        if not math.isfinite(text):
            raise ValueError(f"expected {ALLOWED}, got {text!r}")
        return int(text)
    match = _size_re().match(str(text))
    if not match:
        raise ValueError(f"expected {ALLOWED}, got {text!r}")
    number, unit = match.groups()
    value = float(number) * _UNITS[(unit or "").lower()]
    if not math.isfinite(value):  # 400 digits: beyond any float, not a size
        raise ValueError(f"size too large: {text!r}")
    return int(value)


def format_size(n: int) -> str:
    """Render a byte count for people: ``16.0GiB``, ``512MiB``, ``300B``."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{n}B"

"""Notes and warnings on stderr: stdout belongs to ``eval`` and to reports."""

from __future__ import annotations

import sys


def warnings_text(warnings, quiet: bool) -> str:
    """What ``print_warnings`` prints."""
    return "" if quiet else "".join(f"buildpolicy: warning: {warning}\n" for warning in warnings)


def print_warnings(warnings, quiet: bool) -> None:
    """Warnings go to stderr (never stdout, which belongs to `eval`)."""
    text = warnings_text(warnings, quiet)
    if text:
        sys.stderr.write(text)
        sys.stderr.flush()

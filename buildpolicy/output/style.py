"""Text for people at a terminal: colour (ANSI SGR), the terminal's width, short paths.

Only the reports (``explain``) use this; the prompt path never imports it. No
dependency: a handful of escape codes is all a report needs.

Colour: ``--color always`` and ``never`` say it; ``auto`` colours when the stream
is a terminal, ``NO_COLOR`` is unset or empty (https://no-color.org) and
``TERM`` is not ``dumb``. Width: ``COLUMNS`` when it is a positive number, else
the terminal's; a pipe or a file gets whole lines (None), for ``grep``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

COLOR_CHOICES = ("auto", "always", "never")

_SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
        "cyan": "36"}
_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def use_color(choice: str, stream, environ=os.environ) -> bool:
    """Whether to colour what goes to ``stream`` under ``--color choice``."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


def terminal_width(stream, environ=os.environ) -> int | None:
    """Columns to wrap to: ``COLUMNS``, else the terminal's; None for a pipe or file."""
    columns = environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if stream is None or not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno()).columns or None
    except (OSError, ValueError, AttributeError):
        return None


class Style:
    """Wraps text in SGR codes when enabled, else returns it as is."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, *names: str) -> str:
        """``text`` in the styles ``names`` (bold, dim, red, green, yellow, blue, magenta, cyan)."""
        if not self.enabled or not names or not text:
            return text
        return f"\x1b[{';'.join(_SGR[name] for name in names)}m{text}\x1b[0m"


def visible_len(text: str) -> int:
    """Length on screen: escape codes take no columns."""
    return len(_ESCAPE.sub("", text))


def clip(text: str, width: int | None) -> str:
    """``text`` cut to ``width`` columns with an ellipsis (plain text only); as is when None."""
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def wrap(text: str, width: int | None, indent: str, first: str | None = None) -> list[str]:
    """``text`` wrapped to ``width`` columns, lines after the first indented by ``indent``
    (the first by ``first``, default ``indent``); one line when width is None. Words
    longer than a line (paths) are broken rather than overflow."""
    first = indent if first is None else first
    if width is None:
        return [first + text]
    import textwrap

    return textwrap.wrap(text, width=max(width, len(first) + 10, len(indent) + 10), initial_indent=first,
                         subsequent_indent=indent, break_on_hyphens=False) or [first]


class PathShortener:
    """Paths as people read them: relative to the project, the shipped policies as
    ``<builtin>/…``, under the home directory as ``~/…``; others unchanged."""

    def __init__(self, project_root: str | None, builtin_dir: str | None, home: str | None):
        self.prefixes = [(root, label) for root, label in
                         ((project_root, ""), (builtin_dir, "<builtin>/"), (home, "~/")) if root]

    def __call__(self, path) -> str:
        """The short form of ``path`` (a str or Path; None stays None)."""
        if path is None:
            return path
        text = str(path)
        for root, label in self.prefixes:
            root = str(Path(root))
            if text == root:
                return label.rstrip("/") or "."
            if text.startswith(root.rstrip("/") + "/"):
                return label + text[len(root.rstrip("/")) + 1:]
        return text

    def in_text(self, text: str) -> str:
        """``text`` (a message) with the paths in it shortened."""
        for root, label in self.prefixes:
            text = text.replace(str(Path(root)).rstrip("/") + "/", label or "")
        return text

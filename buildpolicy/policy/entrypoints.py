"""Entry points of one group, read from the installed distributions' ``entry_points.txt``.

What ``importlib.metadata.entry_points(group=...)`` answers, without importing it:
``importlib.metadata`` pulls in ``email``, ``zipfile``, ``csv`` and more, tens of
milliseconds of the first prompt after installing anything (DESIGN §10: a cold ``env``
under 300 ms). Distributions are the ``*.dist-info`` and ``*.egg-info`` directories of the
``sys.path`` directories, in ``sys.path`` order, as ``importlib.metadata`` finds them; the
file format is the same small INI dialect (``[group]`` sections of ``name = value`` lines,
``#``/``;`` comments); a distribution is named by its METADATA's ``Name:``, as
``importlib.metadata`` names it (the directory's name when that cannot be read). Zipped
eggs on ``sys.path`` are not read (nothing installs them any more); their plugins are
missed, as they would be by ``pip``-installed tools.
"""

from __future__ import annotations

import os
import sys

_SUFFIXES = (".dist-info", ".egg-info")


def distribution_name(directory: str) -> str:
    """The normalized project name of a ``name-version.dist-info`` or ``name.egg-info``
    directory (PEP 503: lower case, runs of ``-_.`` as ``-``)."""
    stem = directory.rsplit(".", 1)[0]
    # The version starts at the first "-" followed by a digit; a dist-info name has its own
    # dashes escaped as "_" (PEP 427), an egg-info one may have none.
    name = stem
    for index, char in enumerate(stem):
        if char == "-" and stem[index + 1:index + 2].isdigit():
            name = stem[:index]
            break
    return normalized_name(name)


def normalized_name(name: str) -> str:
    """A project name as PEP 503 compares it: lower case, runs of ``-_.`` as one ``-``."""
    normalized = []
    for char in name.lower():
        if char in "-_.":
            if not normalized or normalized[-1] != "-":
                normalized.append("-")
        else:
            normalized.append(char)
    return "".join(normalized)


def parse_group(text: str, group: str) -> list[tuple[str, str]]:
    """``(name, value)`` of every entry of ``[group]`` in an ``entry_points.txt`` text."""
    entries = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")  # as importlib.metadata reads it: "[ g ]" is not "g"
            continue
        if section != group or "=" not in line:
            continue
        name, _, value = line.partition("=")
        if name.strip():
            entries.append((name.strip(), value.strip()))
    return entries


def scan(group: str, path: list[str] | None = None) -> list[tuple[str, str, str]]:
    """``(entry name, "module[:attr]", distribution)`` for ``group``, in ``sys.path`` order
    (or ``path``'s); unreadable directories and files are skipped."""
    found = []
    for entry in sys.path if path is None else path:
        directory = entry or "."
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue  # a zip file, a missing directory
        for name in names:
            if not name.endswith(_SUFFIXES):
                continue
            try:
                with open(os.path.join(directory, name, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read(1 << 20)
            except (OSError, UnicodeDecodeError):
                continue
            entries = parse_group(text, group)
            if entries:
                dist = _metadata_name(os.path.join(directory, name)) or distribution_name(name)
                found.extend((entry_name, value, dist) for entry_name, value in entries)
    return found


def _metadata_name(info_dir: str) -> str | None:
    """The normalized ``Name:`` of a distribution's METADATA (PKG-INFO for an egg-info),
    which importlib.metadata reports; None when it cannot be read. Read only for the few
    distributions with entries in the group: it is the name, not the directory's, that says
    whether a plugin is buildpolicy's own."""
    for metadata in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info_dir, metadata), encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if not line.strip():
                        break  # the headers end at the first blank line
                    if line.lower().startswith("name:"):
                        return normalized_name(line.split(":", 1)[1].strip())
        except OSError:
            continue
    return None

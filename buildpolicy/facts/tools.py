"""The ``tool.<name>`` probes: where a program is on the caller's PATH."""

from __future__ import annotations

import os

from buildpolicy.facts.unknown import FactUnknown


def which(name: str, ctx) -> str | None:
    """Absolute path of program ``name`` on the caller's PATH (``ctx.environ``), or None.

    Relative PATH entries are taken relative to the caller's directory, not ours.
    A small loop instead of shutil.which: importing shutil costs more than the search.
    """
    search = ctx.environ.get("PATH")
    if search is None:
        search = os.defpath  # what a shell uses when PATH is unset
    for directory in search.split(os.pathsep):
        if not os.path.isabs(directory):
            directory = os.path.join(ctx.cwd, directory or ".")
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


def probe_tool(s) -> str:
    """The ``tool.<name>`` fact: absolute path, or unknown when not found."""
    name = s.name.removeprefix("tool.")
    if "/" in name or os.sep in name:
        raise FactUnknown(f"{name!r} is not a program name")
    path = which(name, s.ctx)
    if path is None:
        raise FactUnknown(f"{name} is not on PATH")
    return path

"""The ``tool.<name>`` probes: where a program is on the caller's PATH."""

from __future__ import annotations

import os

from buildpolicy.facts.context import FactUnknown


def which(name: str, ctx) -> str | None:
    """Absolute path of program ``name`` on the caller's PATH (``ctx.environ``), or None.

    Relative PATH entries are taken relative to the caller's directory, not ours.
    """
    import shutil  # lazy: only tool facts need it

    search = ctx.environ.get("PATH")
    if search is None:
        search = os.defpath  # what a shell uses when PATH is unset
    dirs = [d if os.path.isabs(d) else os.path.join(ctx.cwd, d or ".") for d in search.split(os.pathsep)]
    found = shutil.which(name, path=os.pathsep.join(dirs))
    return os.path.abspath(found) if found else None


def probe_tool(s) -> str:
    """The ``tool.<name>`` fact: absolute path, or unknown when not found."""
    name = s.name.removeprefix("tool.")
    if "/" in name or os.sep in name:
        raise FactUnknown(f"{name!r} is not a program name")
    path = which(name, s.ctx)
    if path is None:
        raise FactUnknown(f"{name} is not on PATH")
    return path

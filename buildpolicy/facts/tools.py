"""The ``tool.<name>`` probes: where a program is on the caller's PATH."""

from __future__ import annotations

import os

from buildpolicy.facts.unknown import FactUnknown


def which(name: str, ctx, *, absolute_only: bool = False) -> str | None:
    """Absolute path of program ``name`` on the caller's PATH (``ctx.environ``), or None.

    Relative PATH entries are taken relative to the caller's directory, not ours;
    with ``absolute_only`` they are skipped: a program buildpolicy runs itself must
    not be one a repository put in the directory the prompt happens to be in.
    A small loop instead of shutil.which: importing shutil costs more than the search.
    """
    search = ctx.environ.get("PATH")
    if search is None:
        search = os.defpath  # what a shell uses when PATH is unset
    for directory in search.split(os.pathsep):
        if not os.path.isabs(directory):
            if absolute_only:
                continue
            directory = os.path.join(ctx.cwd, directory or ".")
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


def relative_path_entry(path: str, ctx) -> str | None:
    """The relative PATH entry (``""``, ``.``, ``tools``…) through which ``path`` was
    found in the caller's directory, or None when its directory is no such entry."""
    search = ctx.environ.get("PATH")
    directory = os.path.dirname(os.path.abspath(path))
    for entry in (os.defpath if search is None else search).split(os.pathsep):
        if not os.path.isabs(entry) and os.path.abspath(os.path.join(ctx.cwd, entry or ".")) == directory:
            return entry
    return None


def repository_binary_problem(path: str, ctx) -> str | None:
    """Why buildpolicy must not run the program at ``path`` itself, or None.

    A program found through a relative PATH entry lies in the directory the
    prompt happens to be in: the repository chose it, not the user.
    """
    entry = relative_path_entry(path, ctx)
    if entry is None:
        return None
    return (f"{path} is found through the relative PATH entry {entry!r}, in a directory the repository "
            "chose: buildpolicy does not run it")


def probe_tool(s) -> str:
    """The ``tool.<name>`` fact: absolute path, or unknown when not found."""
    name = s.name.removeprefix("tool.")
    if "/" in name or os.sep in name:
        raise FactUnknown(f"{name!r} is not a program name")
    path = which(name, s.ctx)
    if path is None:
        raise FactUnknown(f"{name} is not on PATH")
    return path

"""The git facts that need git itself: ``git.commit_date``, ``git.describe``, ``git.dirty``.

``git.head`` is read from the repository's files (``facts/git.py``); these run
``git`` with the probe timeout, in the project's directory, with the settings
that could run a command from the repository's own configuration turned off
(``core.fsmonitor``, fetching; no optional locks, so nothing is written) and
the repository named explicitly (see ``_git``). The date and
``describe`` of a commit never change for that commit (``describe`` also
depends on the tags): both are kept in the probe cache, so a warm ``env`` at the
next prompt re-reads HEAD from the files and starts no process. ``git.dirty``
cannot be cached: a run that depends on it is never replayed.
"""

from __future__ import annotations

import os
from pathlib import Path

from buildpolicy.facts.git import head_of, work_tree
from buildpolicy.facts.unknown import FactUnknown


def _git(s, *args: str) -> str:
    """The output of ``git args…`` on the repository ``head_of`` read HEAD from; FactUnknown
    when it fails.

    git is pointed at that repository explicitly (``--git-dir``, ``--work-tree``): left to
    discover one from the working directory, it would take a bare repository committed inside
    the clone (its own ``config`` chosen by the repository's authors) and could run a command
    from it, e.g. a promisor remote's ``uploadpack`` fetching the missing commit. Fetching
    is off as well (``protocol.allow=never``, ``GIT_NO_LAZY_FETCH``), and bare repositories are
    used only when named (``safe.bareRepository=explicit``)."""
    from buildpolicy.facts.subproc import run_text
    from buildpolicy.facts.tools import repository_binary_problem

    git = s.fact("tool.git")
    if git is None:
        raise FactUnknown("git is not on PATH")
    problem = repository_binary_problem(git, s.ctx)
    if problem:
        raise FactUnknown(problem)
    start = Path(os.path.abspath(s.ctx.cwd))
    _commit, gitdir, _common = head_of(s)
    env = dict(s.ctx.environ)
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_NO_LAZY_FETCH="1", GIT_TERMINAL_PROMPT="0")
    for name in ("GIT_EXTERNAL_DIFF", "GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR"):
        env.pop(name, None)  # named explicitly below, from what head_of read
    argv = [git, "-c", "core.fsmonitor=false", "-c", "protocol.allow=never", "-c", "safe.bareRepository=explicit",
            f"--git-dir={gitdir}", f"--work-tree={work_tree(start, s.ctx.environ)}", *args]
    code, out, problem = run_text(argv, env=env, cwd=s.ctx.cwd)
    if code != 0:
        raise FactUnknown(f"git {args[0]} failed: {problem}")
    return out.strip()


def _cached(s, key_parts, compute) -> str:
    from buildpolicy.facts.cache import cache_key

    key = cache_key(*key_parts)
    cached = s.cache.get(key)
    if isinstance(cached, str):
        s.note_cached()
        return cached
    value = compute()
    s.cache.put(key, value)
    return value


def probe_commit_date(s) -> str:
    """The ``git.commit_date`` fact: HEAD's committer date as ``git log --format=%ci``
    prints it (``2026-11-30 17:21:14 +0100``)."""
    commit, _gitdir, _common = head_of(s)
    return _cached(s, ("git-commit-date", commit),
                   lambda: _git(s, "log", "-1", "--format=%ci", commit) or _no_output("log"))


def probe_describe(s) -> str:
    """The ``git.describe`` fact: ``git describe --tags --always`` of HEAD."""
    from buildpolicy.filestate import stat_token

    commit, _gitdir, common = head_of(s)
    # New tags change the answer for the same commit: the key holds where tags live.
    tags = (stat_token(common / "packed-refs"), stat_token(common / "refs" / "tags"))
    return _cached(s, ("git-describe", commit, *tags),
                   lambda: _git(s, "describe", "--tags", "--always", commit) or _no_output("describe"))


def probe_dirty(s) -> bool:
    """The ``git.dirty`` fact: the work tree or index differs from HEAD (untracked files count)."""
    head_of(s)
    return bool(_git(s, "status", "--porcelain"))


def _no_output(what: str) -> str:
    raise FactUnknown(f"git {what} printed nothing")

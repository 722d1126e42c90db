"""The ``git.head`` probe: read HEAD and refs from the repository files, no git process.

Handles ``.git`` directories and ``.git`` files (worktrees and submodules point
elsewhere with ``gitdir:``; worktrees share refs through ``commondir``), loose and
packed refs, symbolic refs and detached HEADs.
"""

from __future__ import annotations

import os
from pathlib import Path

from buildpolicy.facts.unknown import FactUnknown

SHORT = 7
_HEX = frozenset("0123456789abcdef")


MAX_REF_BYTES = 64 << 10  # HEAD, a .git file and a ref are a line each


def _read(path: Path) -> str | None:
    # A repository's files: a FIFO or a huge file must not hang or bloat a prompt.
    from buildpolicy.filestate import read_bounded

    try:
        return read_bounded(path, MAX_REF_BYTES).decode("utf-8", "replace").strip()
    except OSError:
        return None


def _is_hash(text: str) -> bool:
    return len(text) in (40, 64) and set(text) <= _HEX


def _gitdir_from_file(dotgit: Path) -> Path | None:
    text = _read(dotgit) or ""
    if not text.startswith("gitdir:"):
        return None
    target = Path(text.removeprefix("gitdir:").strip())
    return target if target.is_absolute() else dotgit.parent / target


def find_git_dirs(start: Path, environ=None) -> tuple[Path, Path] | None:
    """``(git dir, common dir)`` of the repository containing ``start``, or None.

    ``GIT_DIR`` in ``environ`` wins, as it does for git itself.
    """
    environ = environ or {}
    gitdir = None
    if environ.get("GIT_DIR"):
        gitdir = start / environ["GIT_DIR"]
    else:
        for directory in (start, *start.parents):
            dotgit = directory / ".git"
            if dotgit.is_dir():
                gitdir = dotgit
            elif dotgit.is_file():
                gitdir = _gitdir_from_file(dotgit)
            else:
                continue
            break
    if gitdir is None or not gitdir.is_dir():
        return None
    common = _read(gitdir / "commondir")
    commondir = (gitdir / common) if common else gitdir
    if environ.get("GIT_COMMON_DIR"):
        commondir = start / environ["GIT_COMMON_DIR"]
    return gitdir, commondir


def work_tree(start: Path, environ=None) -> Path:
    """The work tree of the repository containing ``start``: ``GIT_WORK_TREE``, else the
    directory holding the ``.git`` that ``find_git_dirs`` finds (``start`` with ``GIT_DIR``)."""
    environ = environ or {}
    if environ.get("GIT_WORK_TREE"):
        return start / environ["GIT_WORK_TREE"]
    if not environ.get("GIT_DIR"):
        for directory in (start, *start.parents):
            if (directory / ".git").exists():
                return directory
    return start


def _packed_ref(commondir: Path, ref: str) -> str | None:
    for line in (_read(commondir / "packed-refs") or "").splitlines():
        if line.startswith(("#", "^")):
            continue
        value, _, name = line.partition(" ")
        if name.strip() == ref:
            return value
    return None


def resolve_ref(gitdir: Path, commondir: Path, ref: str) -> str | None:
    """The commit hash ``ref`` (``HEAD``, ``refs/heads/main``…) points to, or None."""
    for _ in range(10):  # symbolic refs may chain; a loop is a broken repository
        # Per-worktree refs (HEAD, refs/bisect…) live in the git dir, shared ones in
        # the common dir; loose refs shadow packed ones.
        text = _read(gitdir / ref)
        if text is None and commondir != gitdir:
            text = _read(commondir / ref)
        if text is None:
            text = _packed_ref(commondir, ref)
        if text is None:
            return None
        if text.startswith("ref:"):
            ref = text.removeprefix("ref:").strip()
            continue
        return text if _is_hash(text) else None
    return None


def head_commit(start: Path, environ=None) -> str | None:
    """The full commit hash of HEAD for the repository containing ``start``, or None."""
    dirs = find_git_dirs(start, environ)
    return resolve_ref(*dirs, "HEAD") if dirs else None


def head_of(s) -> tuple[str, Path, Path]:
    """HEAD's full commit hash for the probe session ``s`` (its working directory), and the
    repository's git and common directories; FactUnknown when there is no commit."""
    start = Path(os.path.abspath(s.ctx.cwd))
    dirs = find_git_dirs(start, s.ctx.environ)
    if dirs is None:
        raise FactUnknown(f"{start} is not inside a git repository")
    commit = resolve_ref(*dirs, "HEAD")
    if commit is None:
        raise FactUnknown("HEAD does not point to a commit (new repository, or an unsupported ref format)")
    return commit, *dirs


def probe_git_head(s) -> str:
    """The ``git.head`` fact: the first 7 hex digits of HEAD's commit."""
    return head_of(s)[0][:SHORT]


_CREDENTIALS = r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@]*)@"


def _without_credentials(url: str) -> str:
    """``url`` with the user part of an http(s)/ftp URL replaced: it may be a token
    (``https://ghp_…@github.com/…``). ssh users (``git@host:…``, ``ssh://git@…``) are kept."""
    import re  # not at module level: the warm replay imports this module

    match = re.match(_CREDENTIALS, url)
    if match and match.group("scheme").lower().startswith(("http", "ftp")):
        return f"{match.group('scheme')}<redacted>@{url[match.end():]}"
    return url


def remote_url(start: Path, environ=None) -> str | None:
    """The URL of the ``origin`` remote (else the first remote) of the repository
    containing ``start``, read from its config file with no git process; credentials
    in it are redacted. None when there is no repository or no remote."""
    import re

    dirs = find_git_dirs(start, environ)
    if dirs is None:
        return None
    urls: dict[str, str] = {}
    section = None
    for raw in (_read(dirs[1] / "config") or "").splitlines():
        line = raw.strip()
        if line.startswith("["):
            match = re.match(r'\[\s*remote\s+"(?P<name>[^"]*)"\s*\]', line)
            section = match.group("name") if match else None
            continue
        key, sep, value = line.partition("=")
        if section is not None and sep and key.strip().lower() == "url" and section not in urls:
            urls[section] = value.strip().strip('"')
    url = urls.get("origin") or next(iter(urls.values()), None)
    return _without_credentials(url) if url else None


def head_files(start: Path, environ=None) -> list[Path]:
    """The files HEAD's commit is read from: ``HEAD``, then the ref file it names (loose,
    else ``packed-refs``). A warm replay watches them to notice a commit or a checkout."""
    dirs = find_git_dirs(start, environ)
    if dirs is None:
        return []
    gitdir, commondir = dirs
    files = [gitdir / "HEAD"]
    text = _read(gitdir / "HEAD") or ""
    if text.startswith("ref:"):
        ref = text.removeprefix("ref:").strip()
        loose = next((d / ref for d in (gitdir, commondir) if (d / ref).is_file()), None)
        files.append(loose if loose is not None else commondir / "packed-refs")
    return files

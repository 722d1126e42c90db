"""buildpolicy's own files on disk: has a file changed, reading and writing one safely.

A base module: standard library only, no attrs, because the warm ``env`` replay
(``buildpolicy.replay``), the policy cache (``buildpolicy.policy.loader``), the
plugin host's entry-point cache, cargo-profile facts and trust all answer the
same question (is this file still the one that was read?) with the same token,
and the replay runs at every prompt. Every cache and state file is read with
``read_state`` and written with ``write_state``, which refuse FIFOs, devices,
huge files and directories another user could write to.
"""

from __future__ import annotations

import errno
import os
import stat
import sys


def xdg_dir(environ, variable: str, default: str) -> str:
    """``$<variable>`` when it is an absolute path, else ``$HOME/<default>``.

    The XDG base directory specification says relative values are invalid and
    must be ignored.
    """
    value = environ.get(variable)
    if value and os.path.isabs(value):
        return value
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, default)


def cache_dir(environ) -> str:
    """``$XDG_CACHE_HOME/buildpolicy`` (default ``~/.cache/buildpolicy``)."""
    return os.path.join(xdg_dir(environ, "XDG_CACHE_HOME", ".cache"), "buildpolicy")


def stat_token(path) -> str:
    """Inode, size, mtime and ctime of a file or directory, symlinks followed
    (``missing`` when absent, ``dangling`` for a symlink to nothing).

    A file replaced by another (a rename, an upgrade) gets a new inode; an edit
    changes mtime and ctime, and ctime cannot be set back even by a copy that
    preserves mtimes. A directory's times change when entries come or go.
    """
    try:
        st = os.stat(path)
    except OSError:
        return "dangling" if os.path.lexists(path) else "missing"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


# The kernel stamps files from a clock that lags the wall clock by up to a tick
# (1-10 ms). Filesystems with coarser timestamps (FAT: 2 s) are not covered.
RACY_MARGIN_NS = 20_000_000


def racy(token: str, since_ns: int) -> bool:
    """Whether the file behind ``token`` may have changed at or after ``since_ns``
    (the start of the run that read it), so that a read during the run and a later
    write could carry the same token (the "racy git" problem). Results built from
    such a file are not kept; the next run, a moment later, keeps them."""
    fields = token.split(":")
    return len(fields) == 4 and int(fields[3]) >= since_ns - RACY_MARGIN_NS


def sys_path_state() -> str:
    """A cheap fingerprint of the installed distributions: each ``sys.path`` entry with its mtime.

    Installing or removing a distribution changes its site directory's mtime.
    ``sys.path[0]`` is left out: it is the script's directory or the working
    directory (``python -m``), where distributions are not installed.
    """
    parts = []
    for entry in sys.path[1:]:
        if entry in ("", "."):
            continue
        try:
            parts.append(f"{entry}={os.stat(entry).st_mtime_ns}")
        except OSError:
            parts.append(f"{entry}=-")
    return "\n".join(parts)


def atomic_write(path, data: bytes, *, mode: int = 0o644, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same directory, then rename.

    Readers see the old or the new file, never half of one; concurrent writers
    each use their own temp name. (No tempfile module: it is slow to import.)
    ``mode`` is set explicitly, so the umask cannot narrow a shared file;
    ``durable`` also syncs the data to disk before the rename (user-edited files).
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    os.makedirs(directory or ".", exist_ok=True)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ----------------------------------------------------------- reading state safely
#
# Cache and state files are buildpolicy's own, but they live where the
# environment says (``XDG_CACHE_HOME`` may name a directory under /tmp) and
# anything can be found there: a FIFO (an open() that never returns), a symlink
# to /dev/zero (a read that never ends), a file planted by another user (a pickle
# is code). So every cache and state file is read through ``read_state``: only a
# regular file of at most ``limit`` bytes, owned by this user (or root), in a
# directory no other user can write to. Anything else is refused with
# ``Refused``, an OSError, which every reader already treats as "corrupt:
# ignore it and rebuild".

# Limits of buildpolicy's own files; a real one is a few kilobytes.
STATE_LIMIT = 4 << 20
# The verdict on each directory checked (once per process: a run reads many files
# there), and the refusals already reported on stderr.
_verdicts: dict[str, str | None] = {}
_warned: set[str] = set()


class Refused(OSError):
    """A file (or the directory it is in) that buildpolicy will not read or write."""


def _owner_ok(uid: int, owner: int) -> bool:
    return owner == uid or owner == 0


def _unsafe_chain(path: str, uid: int, gid: int) -> tuple[str | None, bool]:
    """Why ``path`` or a directory above it could be changed by another user, or None;
    and whether every component exists (only then is the answer final).

    Like git's ``safe.directory`` and ssh's ``StrictModes``: each directory must
    belong to this user or root; one writable by others must be sticky (``/tmp``),
    where nobody can rename or replace what is not theirs. A directory writable
    by its group is accepted when the group is this user's own (the user-private
    groups of umask 002 systems). A symlink must belong to this user or root too.
    """
    # Walked to the root: the reason given is the topmost unsafe directory, the one
    # to fix (everything below it is unsafe with it), so one warning covers them all.
    complete = True
    reason = None
    current = path
    while True:
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            complete = False
        except OSError as exc:
            reason, complete = f"{current} cannot be checked ({exc.strerror or exc})", False
        else:
            mode = st.st_mode
            if not _owner_ok(uid, st.st_uid):
                reason = f"{current} belongs to {_user_name(st.st_uid)}, not to you"
            elif not stat.S_ISLNK(mode) and not mode & stat.S_ISVTX:
                if mode & stat.S_IWOTH:
                    reason = f"{current} is writable by every user"
                elif mode & stat.S_IWGRP and st.st_gid != gid:
                    reason = f"{current} is writable by group {_group_name(st.st_gid)}"
        parent = os.path.dirname(current)
        if parent == current:
            return reason, complete
        current = parent


def _unsafe_path(path: str) -> tuple[str | None, bool]:
    """``_unsafe_chain`` for this process's user, of ``path`` as written and, when that
    is safe, of where its symlinks lead."""
    uid, gid = os.geteuid(), os.getegid()
    reason, complete = _unsafe_chain(path, uid, gid)
    if reason is None and complete:
        real = os.path.realpath(path)
        if real != path:
            reason, complete = _unsafe_chain(real, uid, gid)
    return reason, complete


def writable_by_others(path) -> str | None:
    """Why another user could change ``path`` (a file or directory) or plant files in or
    above it, or None (``_unsafe_chain``'s rules). For the trusted layers' policy files,
    which may set any variable: they must be as much the user's own as their state."""
    if not hasattr(os, "geteuid"):  # pragma: no cover - not POSIX: no owners to check
        return None
    return _unsafe_path(os.path.abspath(os.fspath(path)))[0]


def _user_name(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        import grp

        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except (ImportError, KeyError):
        return f"gid {gid}"


def unsafe_directory(directory, *, warn: bool = True) -> str | None:
    """Why buildpolicy must not use cache or state files in ``directory``, or None when it may.

    The first refusal of each directory is reported on stderr, once per process:
    buildpolicy then runs without that cache or state (nothing read, nothing written).
    ``warn=False`` leaves the reporting to the caller (a directory that is not a cache).
    """
    if not hasattr(os, "geteuid"):  # pragma: no cover - not POSIX: no owners to check
        return None
    directory = os.path.abspath(os.fspath(directory))
    if directory in _verdicts:
        return _verdicts[directory]
    reason, complete = _unsafe_path(directory)
    if reason is not None and warn:
        _warn_refused(reason)
    if complete or reason is not None:
        _verdicts[directory] = reason
    return reason


def _warn_refused(reason: str) -> None:
    if reason in _warned:
        return
    _warned.add(reason)
    try:
        sys.stderr.write(
            f"buildpolicy: warning: {reason}, so another user could plant files there: buildpolicy "
            "runs without its cache and state below it (fix: XDG_CACHE_HOME / XDG_STATE_HOME in a "
            "directory of your own, or chown / chmod go-w it)\n"
        )
    except (OSError, ValueError, AttributeError):
        pass


def read_bounded(path, limit: int, *, owned: bool = False, pipes: bool = False) -> bytes:
    """The bytes of the regular file at ``path``, refusing (``Refused``) anything else:
    a FIFO, a device, a directory, more than ``limit`` bytes.

    The open never blocks (``O_NONBLOCK``: a FIFO without a writer would wait
    forever) and the type is checked on the opened descriptor, so a file swapped
    in between cannot slip through. ``owned`` also requires the file to belong to
    this user or root and to be writable by nobody else, in a directory that passes
    ``unsafe_directory`` (for buildpolicy's own cache and state files). ``pipes``
    accepts a pipe too (``--facts <(…)``), read up to the limit; a FIFO
    nobody writes to reads as empty. A missing file raises FileNotFoundError.
    """
    path = os.fspath(path)
    if owned:
        reason = unsafe_directory(os.path.dirname(os.path.abspath(path)))
        if reason is not None:
            raise Refused(errno.EPERM, reason)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if pipes and stat.S_ISFIFO(st.st_mode):  # a FIFO or pipe: block on it like any reader
            os.set_blocking(fd, True)
        elif not stat.S_ISREG(st.st_mode):
            raise Refused(errno.EINVAL, f"not a regular file but {_file_kind(st.st_mode)}", path)
        elif st.st_size > limit:
            raise Refused(errno.EFBIG, f"larger than {limit} bytes", path)
        if owned and (not _owner_ok(getattr(os, "geteuid", lambda: 0)(), st.st_uid)
                      or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            raise Refused(errno.EPERM, f"belongs to uid {st.st_uid} or is writable by others", path)
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 1 << 20))  # one byte past the limit tells
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise Refused(errno.EFBIG, f"larger than {limit} bytes", path)  # it grew while read
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "something else"


def read_state(path, limit: int = STATE_LIMIT) -> bytes:
    """A cache or state file of buildpolicy's own: ``read_bounded`` with ``owned``."""
    return read_bounded(path, limit, owned=True)


# buildpolicy's JSON state nests a few levels; anything deeper is damage, and would make
# whoever walks it recursively (str(), a comparison) hit the recursion limit.
STATE_DEPTH = 32


def load_state_json(path, limit: int = STATE_LIMIT):
    """The JSON value in state file ``path``, or None when it is missing, refused or corrupt
    (not UTF-8, not JSON, nested more than ``STATE_DEPTH`` deep)."""
    try:
        value = json_value(read_state(path, limit).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return None if too_deep(value, STATE_DEPTH) else value


def json_text(value, *, sort_keys: bool = False, compact: bool = True) -> str:
    """``json.dumps(value)`` without importing ``json`` (see :func:`json_value`): CPython's
    own C encoder with ``json``'s defaults (ASCII output, NaN allowed), compact
    separators unless ``compact`` is false; the module itself where that encoder is missing.
    For the small state records a full ``env`` writes."""
    separators = (",", ":") if compact else (", ", ": ")
    try:
        from _json import encode_basestring_ascii, make_encoder
    except ImportError:  # pragma: no cover - another Python implementation
        import json

        return json.dumps(value, sort_keys=sort_keys, separators=separators)

    def unserializable(item):
        raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")

    encode = make_encoder({}, unserializable, encode_basestring_ascii, None, separators[1], separators[0],
                          sort_keys, False, True)
    return "".join(encode(value, 0))


def json_value(text: str):
    """``json.loads(text)`` without importing ``json`` (its decoder imports ``re``, which
    with ``enum`` costs a warm prompt milliseconds): CPython's own C scanner, which
    ``json`` uses too, with ``json``'s defaults; the module itself where that scanner is
    missing. Raises ValueError on bad input."""
    try:
        from _json import make_scanner
    except ImportError:  # pragma: no cover - another Python implementation
        import json

        return json.loads(text)

    class _Defaults:  # the attributes the scanner reads from json.JSONDecoder
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__

    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = make_scanner(_Defaults())(text, start)
    except StopIteration:
        raise ValueError("not JSON") from None
    except SystemError:
        # Some malformed texts make the scanner look up json.decoder's error class, which it
        # finds only when json is already imported; otherwise it fails without an exception.
        raise ValueError("not JSON") from None
    except RecursionError:  # nested thousands deep: only a forged record is
        raise ValueError("nested too deeply") from None
    if text[end:].strip(" \t\n\r"):
        raise ValueError("extra data after the JSON value")
    return value


def too_deep(data, limit: int) -> bool:
    """Whether any value in ``data`` (dicts and lists, walked without recursion) is nested
    more than ``limit`` levels below the top: parsed state, TOML and facts files alike."""
    if limit < 0 or not isinstance(data, (dict, list)):
        return limit < 0
    stack = [(data, 0)]  # only containers: most values are scalars, not worth a stack entry
    while stack:
        value, depth = stack.pop()
        items = value.values() if isinstance(value, dict) else value
        if depth >= limit:
            if items:  # its items sit deeper than the limit
                return True
            continue
        stack.extend((item, depth + 1) for item in items if isinstance(item, (dict, list)))
    return False


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` in hex, without importing hashlib (OpenSSL costs
    milliseconds at every full run; the builtin module gives the same digest)."""
    try:
        from _sha256 import sha256  # Python 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # Python 3.12 and newer
        except ImportError:  # pragma: no cover - another Python implementation
            from hashlib import sha256
    return sha256(data).hexdigest()


# Binary caches (a marshal or pickle) are sealed: a header and a digest of the content.
# Their loaders trust lengths in the data (marshal allocates a list of the length a
# damaged byte says: gigabytes), so a damaged copy must be recognised before loading.
_SEAL = b"bpseal1\n"
_DIGEST_SIZE = 16


def _digest(data: bytes) -> bytes:
    try:
        from _blake2 import blake2b  # hashlib's own, without importing hashlib (2.5 ms)
    except ImportError:  # pragma: no cover - another Python implementation
        from hashlib import blake2b
    return blake2b(data, digest_size=_DIGEST_SIZE).digest()


def seal(data: bytes) -> bytes:
    """``data`` behind a header and its digest, for ``unseal`` to recognise intact."""
    return _SEAL + _digest(data) + data


def unseal(raw: bytes) -> bytes:
    """The data ``seal`` wrapped in ``raw``; ValueError when it is not a sealed, intact copy."""
    start = len(_SEAL) + _DIGEST_SIZE
    data = raw[start:]
    if not raw.startswith(_SEAL) or len(raw) < start or raw[len(_SEAL):start] != _digest(data):
        raise ValueError("not an intact sealed file")
    return data


def write_state(path, data: bytes, *, mode: int = 0o644) -> None:
    """``atomic_write`` of a cache or state file, refused (``Refused``) in an unsafe directory.

    The directory is checked before it is created and again after: a directory
    another user made in between is refused too.
    """
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    reason = unsafe_directory(directory)
    if reason is None and directory not in _verdicts:
        os.makedirs(directory, exist_ok=True)
        reason = unsafe_directory(directory)
    if reason is not None:
        raise Refused(errno.EPERM, reason)
    atomic_write(path, data, mode=mode)

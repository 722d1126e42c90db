"""``buildpolicy set`` / ``unset``: edit a knob value in a layer file, keeping its comments.

The file of each layer:

- ``user``: ``$XDG_CONFIG_HOME/buildpolicy/knobs.toml`` (default
  ``~/.config/buildpolicy/knobs.toml``), created when missing;
- ``site``: ``knobs.toml`` in the site directory (``$BUILDPOLICY_SITE_DIR``,
  default ``/etc/buildpolicy``), created when missing;
- ``project``: the ``[knobs]`` table of the project's ``buildpolicy.toml``.

The value is checked against the knob's declaration (type, allowed values,
minimum) before anything is written. The file is edited with tomlkit, so
comments, order and formatting survive; a knob declared as a table
(``[knobs.linker] aliases = [...]``) gets its ``default`` key set instead of
being replaced. The result is parsed and schema-validated again, then written
atomically with the original file's permissions.

Concurrent edits (several ``set`` at once from scripts or shells) are
serialised by ``edit_lock``: each reads the file, edits and replaces it while
holding an exclusive lock in the state directory, so none overwrites another's
change with a copy read before it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import KnobSpec
from buildpolicy.filestate import atomic_write

LAYERS = ("user", "site", "project")
LAYER_FILE = "knobs.toml"
# An edit holds the lock for milliseconds; a queue of many, or a slow disk's fsync, for seconds.
EDIT_LOCK_TIMEOUT = 60.0


@contextlib.contextmanager
def edit_lock(path: Path, timeout: float = EDIT_LOCK_TIMEOUT, *, create: bool = False) -> Iterator[None]:
    """Hold the lock that serialises ``set``/``unset`` edits of the layer file ``path`` for the block.

    The lock is the file's directory itself (made first with ``create``, as ``set``
    will write there): it outlives the atomic replacement of the file, and every
    editor of the file finds it, whatever their own state directory. Raises
    BuildpolicyError (nothing written) when it cannot be taken within ``timeout``;
    without the directory (``unset`` has nothing to remove; ``set`` cannot make it)
    the block runs unlocked, and writing the file reports the real error.
    """
    from buildpolicy.run.locks import locked

    directory = Path(path).parent
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        yield
        return
    if not directory.is_dir():
        yield
        return
    with locked(directory, timeout=timeout, directory=True) as held:
        if not held:
            raise BuildpolicyError(f"cannot lock {directory} for editing {Path(path).name} (another `buildpolicy set` "
                                   f"or `unset` still holds it after {timeout:.0f}s); nothing was changed")
        yield


def layer_file(layer: str, paths, profile: Path | None) -> Path:
    """The file ``set``/``unset`` edit for ``layer``."""
    if layer == "user":
        return paths.user_dir / LAYER_FILE
    if layer == "site":
        return paths.site_dir / LAYER_FILE
    if layer == "project":
        if profile is None:
            raise BuildpolicyError("no buildpolicy.toml here or in any parent directory: "
                                   "`buildpolicy init` creates one, or use --layer user")
        return profile
    raise BuildpolicyError(f"unknown layer {layer!r}: use one of {', '.join(LAYERS)}")


def toml_value(spec: KnobSpec, raw: str) -> Any:
    """Check ``raw`` (a command-line string) against ``spec``; return the value to write.

    Raises BuildpolicyError naming the knob and the allowed values. Sizes keep
    the user's spelling (``2GiB``) when it is not a plain byte count.
    """
    from buildpolicy.policy.knobs import coerce

    try:
        value = coerce(spec, raw)
    except ValueError as exc:
        shown = "(not repeated: it may be the secret)" if spec.secret else repr(raw)
        raise BuildpolicyError(f"knob {spec.name!r}: bad value {shown}; allowed: {exc}") from None
    if spec.type in ("size", "seconds"):
        # Keep the user's spelling ("2GiB", "300ms"); a plain number stays a number.
        text = raw.strip()
        if text.isdigit():
            return int(text)
        try:
            return float(text)
        except ValueError:
            return text
    if spec.type == "list":
        return list(value)
    return value


def _read(path: Path, kind: str):
    """Parse ``path`` for editing: (tomlkit document, original text); positioned errors first."""
    import tomlkit

    from buildpolicy.policy.tomlpos import parse_toml
    from buildpolicy.policy.validate import validate_document

    from buildpolicy.filestate import read_bounded
    from buildpolicy.policy.tomlpos import MAX_TOML_BYTES

    try:
        text = read_bounded(path, MAX_TOML_BYTES).decode("utf-8")  # a FIFO is refused, not waited on
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildpolicyError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    doc = parse_toml(path, text)  # TomlSyntaxError carries file:line:col
    problems = validate_document(doc, kind)
    if problems:
        raise BuildpolicyError([*problems, f"{path}: fix these first; nothing was changed"])
    return tomlkit.parse(text), text


def _new_document(layer: str):
    """A fresh layer file: the editor's ``#:schema`` line, a note on what the file is, ``[knobs]``."""
    import tomlkit

    from buildpolicy.data import schema_dir

    return tomlkit.parse(
        f"#:schema {schema_dir() / 'policy.schema.json'}\n"
        f"# Knob values of the {layer} layer. `buildpolicy set` and `buildpolicy unset` edit\n"
        "# this file and keep your comments; you can edit it by hand too.\n\n[knobs]\n"
    )


def set_knob(path: Path, kind: str, layer: str, name: str, value: Any) -> bool:
    """Write ``name = value`` into the ``[knobs]`` table of ``path``; return whether the file was created.

    Callers hold ``edit_lock`` around it: the read, the edit and the write are one update.
    """
    import tomlkit

    doc, _ = _read(path, kind)
    created = doc is None
    if created:
        doc = _new_document(layer)
    knobs = doc.get("knobs")
    if knobs is None:
        doc["knobs"] = tomlkit.table()
        knobs = doc["knobs"]
    current = knobs.get(name)
    if isinstance(current, dict):
        current["default"] = value  # a declaration table: keep its aliases, type and comments
    else:
        knobs[name] = value
    _write_checked(path, kind, tomlkit.dumps(doc), layer)
    return created


def unset_knob(path: Path, kind: str, name: str, layer: str | None = None) -> bool:
    """Remove the value of ``name`` from ``path``'s ``[knobs]`` table; return whether there was one.

    ``layer`` (user, site, project) only shapes the message of a write error.
    Callers hold ``edit_lock`` around it, as for ``set_knob``.
    """
    import tomlkit

    doc, _ = _read(path, kind)
    if doc is None:
        return False
    knobs = doc.get("knobs")
    if knobs is None or name not in knobs:
        return False
    current = knobs[name]
    if isinstance(current, dict):
        if "default" not in current:
            return False  # a declaration without a value: nothing to unset
        del current["default"]
        if not current:
            del knobs[name]
    else:
        del knobs[name]
    _write_checked(path, kind, tomlkit.dumps(doc), layer)
    return True


def _write_checked(path: Path, kind: str, text: str, layer: str | None = None) -> None:
    """Validate the edited text as ``kind``, then replace ``path`` atomically, keeping its mode."""
    from buildpolicy.policy.tomlpos import parse_toml
    from buildpolicy.policy.validate import validate_document

    problems = validate_document(parse_toml(path, text), kind)
    if problems:  # an edit must never turn a valid file into an invalid one
        raise BuildpolicyError([*problems, f"{path}: the edit would make the file invalid; nothing was changed"])
    target = path.resolve() if path.is_symlink() else path  # edit a symlink's target, keep the link
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o644
    try:
        atomic_write(target, text.encode("utf-8"), mode=mode, durable=True)
    except OSError as exc:
        hint = " (the site layer usually needs root)" if layer == "site" and exc.errno in (1, 13) else ""
        raise BuildpolicyError(f"cannot write {target}: {exc.strerror or exc}{hint}") from None


def effective_knob(cwd: Path, environ, name: str):
    """The knob's effective value (a ``KnobValue``) after an edit, or None when it cannot be told.

    None when the knob is not declared or the policies cannot be evaluated:
    the edit itself already succeeded, this only feeds a note.
    """
    from buildpolicy.engine.pipeline import Request, prepare
    from buildpolicy.policy.knobs import resolve_knobs

    try:
        prepared = prepare(Request(cwd=cwd, environ=environ, command="set"))
        knobs = resolve_knobs(prepared.knob_specs.values(), prepared.file_knobs, prepared.baseline, (), lambda _m: None)
    except BuildpolicyError:
        return None
    return knobs.get(name)

"""Cargo's configuration files (``.cargo/config.toml`` up the tree, then
``$CARGO_HOME``) and the ``build.*`` and ``target.*`` values buildpolicy reads
from them (``doctor``, target directories), each with its ``file:line``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.record import frozen
from buildpolicy.errors import BuildpolicyError


@frozen
class ConfigValue:
    """A value from a cargo configuration file, with where it is."""

    key: str  # e.g. "build.rustflags", "target.x86_64-unknown-linux-gnu.linker"
    value: Any
    file: str
    line: int | None

    @property
    def where(self) -> str:
        """``file:line``."""
        return f"{self.file}:{self.line}" if self.line else self.file


def cargo_config_files(cwd: Path, environ: Mapping[str, str]) -> list[Path]:
    """Cargo's configuration files, highest precedence first: ``.cargo/config[.toml]`` from
    ``cwd`` up to the root, then ``$CARGO_HOME/config[.toml]``.

    Where both exist cargo reads the legacy ``config`` (and warns), so it is taken here too.
    """
    cwd = Path(os.path.abspath(cwd))
    home = environ.get("CARGO_HOME") or (str(Path(environ["HOME"]) / ".cargo") if environ.get("HOME") else None)
    dirs = [d / ".cargo" for d in (cwd, *cwd.parents)]
    if home:
        dirs.append(Path(home))
    files: list[Path] = []
    for directory in dirs:
        for name in ("config", "config.toml"):
            path = directory / name
            if path.is_file() and path not in files:
                files.append(path)
                break
    return files


def read_cargo_config(files: list[Path]) -> tuple[list[ConfigValue], list[str]]:
    """The ``build.*`` and ``target.*`` values doctor looks at, and notes on unreadable files."""
    from buildpolicy.policy.tomlpos import parse_toml

    values: list[ConfigValue] = []
    notes: list[str] = []
    for path in files:
        try:
            doc = parse_toml(path)
        except BuildpolicyError as exc:
            notes.append(f"{exc.messages[0]} (cargo will refuse this file too)")
            continue
        except OSError as exc:
            notes.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        build = doc.data.get("build")
        if isinstance(build, dict):
            for key in ("rustflags", "rustc-wrapper", "target-dir", "jobs"):
                if key in build:
                    values.append(ConfigValue(f"build.{key}", build[key], str(path), _line(doc, ("build", key))))
        targets = doc.data.get("target")
        if isinstance(targets, dict):
            for target, table in targets.items():
                if not isinstance(table, dict):
                    continue
                for key in ("rustflags", "linker"):
                    if key in table:
                        values.append(ConfigValue(f"target.{target}.{key}", table[key], str(path),
                                                  _line(doc, ("target", target, key))))
    return values, notes


def _line(doc, keypath) -> int | None:
    pos = doc.key_pos(keypath)
    return pos[0] if pos else None


def first_value(values: list[ConfigValue], key: str) -> ConfigValue | None:
    """The value of ``key`` from the file of highest precedence, or None."""
    return next((v for v in values if v.key == key), None)

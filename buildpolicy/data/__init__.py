"""Locations of the policies and schemas shipped with buildpolicy.

In a wheel, ``policies/`` and ``schema/`` are installed as the packages
``buildpolicy.data.policies`` and ``buildpolicy.data.schema``; in a source
checkout they are the repository's top-level directories.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def policies_dir() -> Path:
    """Return the directory holding the shipped (``builtin`` layer) policy files."""
    return _first_existing(_HERE / "policies", _REPO / "policies")


def schema_dir() -> Path:
    """Return the directory holding ``profile.schema.json`` and ``policy.schema.json``."""
    return _first_existing(_HERE / "schema", _REPO / "schema")

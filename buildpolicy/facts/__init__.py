"""Stage 2, facts probed: the typed facts model (DESIGN §3), names and types, lazy
probes, the probe cache, ``--facts`` overrides, and readers of the files facts come
from (cargo manifests and configuration, rust-toolchain files).

May import the base modules and ``policy`` (the cargo configuration reader uses
its TOML positions); nothing here knows about rules, plugins or output.

Importing this package loads no probe code; each probe module is imported when
one of its facts is first asked for. Helpers used only by some commands are
imported on first access as well.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import`: typing alone costs milliseconds

if TYPE_CHECKING:  # pragma: no cover - typing only
    from buildpolicy.facts.cache import ProbeCache
    from buildpolicy.facts.cargo import CargoArgs, parse_cargo_argv
    from buildpolicy.facts.coerce import FACT_TYPES, coerce_fact, coerce_value
    from buildpolicy.facts.context import ProbeContext, default_cache_dir
    from buildpolicy.facts.overrides import load_facts_file
    from buildpolicy.facts.store import (
        HERMETIC_REASON,
        LISTED_TOOLS,
        FactRegistry,
        FactSpec,
        FactStore,
        ProbeSession,
        fact_type,
        known_fact_names,
        make_registry,
        spec_for,
    )
    from buildpolicy.facts.rust import toolchain_runs
    from buildpolicy.facts.unknown import FactUnknown

# Everything is imported on first access: importing one probe module (the warm
# `env` replay does) runs this package's __init__, which must not pull in the
# typed registry and attrs.
_LAZY = {
    "FACT_TYPES": "coerce",
    "coerce_fact": "coerce",
    "coerce_value": "coerce",
    "ProbeContext": "context",
    "default_cache_dir": "context",
    "FactUnknown": "unknown",
    **dict.fromkeys(
        ("LISTED_TOOLS", "FactRegistry", "FactSpec", "fact_type", "known_fact_names", "make_registry", "spec_for",
         "HERMETIC_REASON", "FactStore", "ProbeSession"),
        "store",
    ),
    "CargoArgs": "cargo",
    "parse_cargo_argv": "cargo",
    "load_facts_file": "overrides",
    "toolchain_runs": "rust",
    "ProbeCache": "cache",
}

__all__ = [
    "FACT_TYPES",
    "HERMETIC_REASON",
    "LISTED_TOOLS",
    "CargoArgs",
    "FactRegistry",
    "FactSpec",
    "FactStore",
    "FactUnknown",
    "ProbeCache",
    "ProbeContext",
    "ProbeSession",
    "coerce_fact",
    "coerce_value",
    "default_cache_dir",
    "fact_type",
    "known_fact_names",
    "make_registry",
    "load_facts_file",
    "parse_cargo_argv",
    "spec_for",
    "toolchain_runs",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"buildpolicy.facts.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'buildpolicy.facts' has no attribute {name!r}")

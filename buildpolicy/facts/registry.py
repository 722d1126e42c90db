"""The facts model: every fact's name, type, meaning and probe (DESIGN §3).

Probe modules are imported only when a fact of theirs is first probed, so loading
the registry (to validate rule expressions) costs no probing code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from buildpolicy.errors import BuildpolicyError

from buildpolicy.facts.coerce import FACT_TYPES

# Tools listed by `buildpolicy facts`; any other `tool.<name>` is valid too.
LISTED_TOOLS = ("mold", "ld.lld", "clang", "sccache", "rustup", "ssh", "rsync", "git")

# Facts with a name under one of these prefixes are valid for any suffix.
DYNAMIC_PREFIXES = {"tool.": "string", "env.": "string"}


def _check_type(_instance, _attribute, value):
    if value not in FACT_TYPES:
        raise ValueError(f"fact type must be one of {', '.join(FACT_TYPES)}, not {value!r}")


@attrs.frozen
class FactSpec:
    """One fact: dotted ``name``, ``type`` (one of FACT_TYPES), ``doc`` and ``probe``.

    ``probe(ctx: ProbeContext)`` returns the value, or None when unknown; it may raise
    ``FactUnknown("why")`` to give a reason, and must not hang. ``expensive`` marks
    probes that run a subprocess or scan every process (their results are cached or
    shared). ``from_invocation`` marks facts computed only from the invocation (cargo
    argv, the caller's environment, the project's Cargo.toml): these are still
    computed in hermetic policy tests, where machine facts are null unless given.
    """

    name: str
    type: str = attrs.field(validator=_check_type)
    doc: str
    probe: Callable[[Any], Any]
    expensive: bool = False
    from_invocation: bool = False


class BuiltinProbe:
    """A probe function named by module and attribute, imported on first call.

    Built-in probe functions take a ``ProbeSession`` (the context plus shared
    intermediate results, other facts and the probe cache). Called directly with a
    plain ``ProbeContext``, as plugin probes are, it probes through a throwaway store.
    """

    __slots__ = ("fact", "module", "function")

    def __init__(self, fact: str, module: str, function: str):
        self.fact = fact
        self.module = module
        self.function = function

    def run(self, session) -> Any:
        """Run the probe function with ``session``; may raise FactUnknown."""
        # Looked up at every call so tests can monkeypatch the module attribute.
        module = importlib.import_module(f"buildpolicy.facts.{self.module}")
        return getattr(module, self.function)(session)

    def __call__(self, ctx) -> Any:
        from buildpolicy.facts.store import FactStore

        return FactStore(ctx).get(self.fact)

    def __repr__(self) -> str:
        return f"<probe buildpolicy.facts.{self.module}.{self.function} for {self.fact}>"


def _spec(name, type_, module, function, doc, *, expensive=False, from_invocation=False) -> FactSpec:
    return FactSpec(name, type_, doc, BuiltinProbe(name, module, function), expensive, from_invocation)


_STATIC = (
    _spec("os", "string", "system", "probe_os", "operating system: linux, macos, windows, freebsd…"),
    _spec("arch", "string", "system", "probe_arch", "CPU architecture: x86_64, aarch64…"),
    _spec("host.triple", "string", "system", "probe_host_triple", "host target triple, e.g. x86_64-unknown-linux-gnu"),
    _spec("cpu.count", "int", "system", "probe_cpu_count", "usable logical CPUs (affinity and cgroup CPU quota respected)"),
    _spec("memory.total", "size", "memory", "probe_memory_total", "physical memory, capped by a cgroup memory limit"),
    _spec("memory.available", "size", "memory", "probe_memory_available",
          "available memory (Linux MemAvailable, macOS free+inactive+speculative), capped by cgroup headroom"),
    _spec("swap.total", "size", "memory", "probe_swap_total", "swap space in bytes"),
    _spec("swap.free", "size", "memory", "probe_swap_free", "free swap in bytes"),
    _spec("cgroup.memory_limit", "size", "memory", "probe_cgroup_memory_limit",
          "the tightest cgroup memory limit of this process, or null when unlimited"),
    _spec("process.earlyoom", "bool", "processes", "probe_earlyoom", "an earlyoom process is running", expensive=True),
    _spec("process.oomd", "bool", "processes", "probe_oomd", "a systemd-oomd process is running", expensive=True),
    _spec("process.rustc_count", "int", "processes", "probe_rustc_count", "rustc processes running now", expensive=True),
    *(
        _spec(f"tool.{tool}", "string", "tools", "probe_tool", f"absolute path of {tool} on PATH, or null")
        for tool in LISTED_TOOLS
    ),
    _spec("rust.version", "string", "rust", "probe_rust_version", "active rustc version, e.g. 1.95.0", expensive=True),
    _spec("rust.toolchains", "list", "rust", "probe_rust_toolchains", "installed rustup toolchains"),
    _spec("rust.nightly", "string", "rust", "probe_rust_nightly", "the installed nightly toolchain to use, or null"),
    _spec("cargo.command", "string", "cargo", "probe_command", "cargo subcommand of the cargo argv (build, check, test…)",
          from_invocation=True),
    _spec("cargo.profile", "string", "cargo", "probe_profile", "cargo profile the build uses", from_invocation=True),
    _spec("cargo.profile_env", "string", "cargo", "probe_profile_env",
          "the profile as cargo spells it in env names (release-lto → RELEASE_LTO)", from_invocation=True),
    _spec("cargo.profile_inherits", "string", "cargo_profiles", "probe_profile_inherits",
          "the profile's inherits (Cargo.toml), or null", from_invocation=True),
    _spec("cargo.incremental", "bool", "cargo_profiles", "probe_incremental",
          "the build is incremental (CARGO_INCREMENTAL, else the profile chain, else cargo's default)",
          from_invocation=True),
    _spec("cargo.config_rustflags", "list", "cargo_profiles", "probe_config_rustflags",
          "where .cargo/config.toml sets rustflags: build and/or target:<triple or cfg>", from_invocation=True),
    _spec("cargo.explicit_features", "bool", "cargo", "probe_explicit_features",
          "the cargo argv selects features itself (--features, -F, --all-features, --no-default-features)",
          from_invocation=True),
    _spec("cargo.toolchain_override", "string", "cargo", "probe_toolchain_override",
          "a +toolchain argument of the cargo argv, or null", from_invocation=True),
    _spec("fs.tmp_is_memory", "bool", "mounts", "probe_tmp_is_memory", "/tmp is tmpfs or ramfs"),
    _spec("git.head", "string", "git", "probe_git_head", "short commit hash of the project, or null"),
    _spec("ci", "bool", "environ", "probe_ci", "CI is set to a true value", from_invocation=True),
)

_BUILTIN = {spec.name: spec for spec in _STATIC}


def _dynamic_spec(name: str) -> FactSpec | None:
    for prefix, type_ in DYNAMIC_PREFIXES.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            if prefix == "tool.":
                return _spec(name, type_, "tools", "probe_tool", f"absolute path of {name[5:]} on PATH, or null")
            return _spec(name, type_, "environ", "probe_env", f"environment variable {name[4:]}, or null",
                         from_invocation=True)
    return None


class FactRegistry:
    """The built-in facts plus extra ones (declared by plugins).

    An extra fact may not reuse a built-in name or a dynamic ``tool.``/``env.`` name
    (BuildpolicyError).
    """

    def __init__(self, extra: Iterable[FactSpec] = ()):
        self._extra: dict[str, FactSpec] = {}
        for spec in extra:
            if not isinstance(spec, FactSpec):
                raise BuildpolicyError(f"a declared fact must be a FactSpec, not {spec!r}")
            if spec.name in _BUILTIN or spec.name in self._extra or _dynamic_spec(spec.name):
                raise BuildpolicyError(f"fact {spec.name!r} is declared twice (or is a built-in fact name)")
            self._extra[spec.name] = spec

    def spec_for(self, name: str) -> FactSpec | None:
        """The spec of fact ``name`` (built-in, extra or dynamic), or None if unknown."""
        return _BUILTIN.get(name) or self._extra.get(name) or _dynamic_spec(name)

    def fact_type(self, name: str) -> str | None:
        """The type of fact ``name``, or None when no such fact exists."""
        spec = self.spec_for(name)
        return None if spec is None else spec.type

    def known_fact_names(self) -> list[str]:
        """Every static fact name (built-ins in DESIGN order, then extras); no ``env.*``."""
        return [*_BUILTIN, *self._extra]


BUILTIN_REGISTRY = FactRegistry()


def make_registry(extra_specs: Mapping[str, FactSpec] | Iterable[FactSpec] = ()) -> FactRegistry:
    """The built-in registry, or one extended by ``extra_specs`` (FactSpecs, or a name → FactSpec mapping)."""
    if isinstance(extra_specs, Mapping):
        extra_specs = extra_specs.values()
    extra_specs = list(extra_specs or ())
    return FactRegistry(extra_specs) if extra_specs else BUILTIN_REGISTRY


def spec_for(name: str) -> FactSpec | None:
    """The built-in spec of fact ``name`` (including dynamic ``tool.X``/``env.X``), or None."""
    return BUILTIN_REGISTRY.spec_for(name)


def fact_type(name: str) -> str | None:
    """The type of built-in fact ``name`` (``tool.X``/``env.X`` included), or None if unknown."""
    return BUILTIN_REGISTRY.fact_type(name)


def known_fact_names() -> list[str]:
    """Static built-in fact names, for suggestions and ``buildpolicy facts`` (listed tools included)."""
    return BUILTIN_REGISTRY.known_fact_names()

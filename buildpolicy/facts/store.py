"""The facts model (DESIGN §3): every fact's name, type, meaning and probe, and the
store that holds one run's values, probed lazily, with overrides and the reason a
fact is unknown.

Declarations and the store live in one module because they need each other: a
store looks facts up in the registry, and a built-in probe called with a plain
context probes through a throwaway store. Probe modules are imported only when a
fact of theirs is first probed, so loading the registry (to validate rule
expressions) costs no probing code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.record import field, frozen
from buildpolicy.errors import BuildpolicyError
from buildpolicy.facts.coerce import FACT_TYPES, coerce_fact, matches_type
from buildpolicy.facts.context import FactUnknown, ProbeContext

# Tools listed by `buildpolicy facts`; any other `tool.<name>` is valid too.
LISTED_TOOLS = ("mold", "ld.lld", "clang", "sccache", "rustup", "ssh", "rsync", "git")

# Facts with a name under one of these prefixes are valid for any suffix.
DYNAMIC_PREFIXES = {"tool.": "string", "env.": "string"}


def _check_type(_instance, _attribute, value):
    if value not in FACT_TYPES:
        raise ValueError(f"fact type must be one of {', '.join(FACT_TYPES)}, not {value!r}")


@frozen
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
    type: str = field(validator=_check_type)
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
    _spec("cargo.targets", "list", "cargo_profiles", "probe_targets",
          "the target triples of the build: --target, else CARGO_BUILD_TARGET, else [build] target; "
          "empty for the host", from_invocation=True),
    _spec("fs.tmp_is_memory", "bool", "mounts", "probe_tmp_is_memory", "/tmp is tmpfs or ramfs"),
    _spec("git.head", "string", "git", "probe_git_head", "short commit hash of the project, or null"),
    _spec("git.commit_date", "string", "gitmeta", "probe_commit_date",
          "committer date of HEAD as git log --format=%ci prints it, or null", expensive=True),
    _spec("git.describe", "string", "gitmeta", "probe_describe",
          "git describe --tags --always of HEAD, or null", expensive=True),
    _spec("git.dirty", "bool", "gitmeta", "probe_dirty",
          "the work tree differs from HEAD (git status --porcelain), or null", expensive=True),
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


# --------------------------------------------------------------------------------------
# The store of one run
# --------------------------------------------------------------------------------------

HERMETIC_REASON = "not given in the test case"


class ProbeSession:
    """What a built-in probe function receives: the context and the store's services.

    ``name`` is the fact being probed. ``fact()`` reads another fact (overrides
    apply), ``shared()`` computes an intermediate result once per store (one
    /proc/meminfo read serves four facts), ``cache`` is the on-disk probe cache and
    ``note_cached()`` records that the value came from it.
    """

    __slots__ = ("store", "ctx", "name")

    def __init__(self, store: FactStore, name: str):
        self.store = store
        self.ctx = store.ctx
        self.name = name

    def fact(self, name: str) -> Any:
        """The value of another fact (None when unknown)."""
        # Not a dependency of the consumer asking: only the fact being probed is.
        return self.store._value(name)

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per store; a FactUnknown it raises is re-raised every time."""
        return self.store._shared_value(key, compute)

    @property
    def cache(self):
        """The on-disk probe cache (``ProbeCache``) of this store."""
        return self.store._probe_cache()

    def note_cached(self) -> None:
        """Record that this fact's value was read from the probe cache."""
        self.store._sources[self.name] = "cache"


class FactStore:
    """Facts of one run, probed on first ``get`` and remembered.

    ``overrides`` (from ``--facts`` or a test case) win over probes and are coerced
    to each fact's type. With ``hermetic=True`` a machine fact absent from the
    overrides is null ("not given in the test case"); facts computed only from the
    invocation (cargo argv, the given environment, Cargo.toml) are still computed,
    so a case means the same on every machine. ``extra_specs`` (a list of FactSpec,
    or a mapping of name to FactSpec) adds plugin facts; their probes get the
    ``ProbeContext``.
    """

    def __init__(
        self,
        ctx: ProbeContext,
        overrides: Mapping[str, Any] | None = None,
        hermetic: bool = False,
        extra_specs: Mapping[str, FactSpec] | Iterable[FactSpec] = (),
    ):
        self.ctx = ctx
        self.hermetic = hermetic
        self.registry = make_registry(extra_specs)
        self._overrides = self._coerce_overrides(overrides or {})
        self._asked: dict[str, None] = {}  # ask order, which completion order is not
        self._values: dict[str, Any] = {}
        self._reasons: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        self._shared: dict[str, tuple[bool, Any]] = {}
        self._probing: set[str] = set()
        self._cache = None
        # What the run's output depends on, per consumer ("engine", "rule <id>",
        # "plugin <name>"): fact -> None (its exact value) or a list of
        # (op, constant, outcome) comparisons. See dependencies().
        self.consumer = "engine"
        self._deps: dict[tuple[str, str], list | None] = {}

    def _coerce_overrides(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(name for name in overrides if self.registry.fact_type(name) is None)
        if unknown:
            raise BuildpolicyError(f"unknown fact(s) given: {', '.join(unknown)}")
        return {name: coerce_fact(name, self.registry.fact_type(name), value) for name, value in overrides.items()}

    def get(self, name: str) -> Any:
        """The value of fact ``name`` (None when unknown); KeyError for an unknown fact name.

        The current consumer now depends on the exact value.
        """
        value = self._value(name)
        self._deps[(self.consumer, name)] = None
        return value

    def peek(self, name: str) -> Any:
        """The value of fact ``name`` for explanations only: no dependency is recorded."""
        return self._value(name)

    def condition(self, name: str, op: str, constant: Any, outcome: Any) -> None:
        """The current consumer depends on fact ``name`` only through ``name <op> constant``
        (which evaluated to ``outcome``), unless it already depends on the exact value."""
        key = (self.consumer, name)
        if key not in self._deps:
            self._deps[key] = [(op, constant, outcome)]
        elif self._deps[key] is not None:
            self._deps[key].append((op, constant, outcome))

    def relax(self, name: str, op: str, constant: Any, outcome: Any) -> None:
        """Like ``condition``, but replaces the current consumer's exact dependency on
        ``name`` (a plugin read the value, then states what its decision depends on)."""
        key = (self.consumer, name)
        if self._deps.get(key) is None:
            self._deps[key] = []
        self._deps[key].append((op, constant, outcome))

    def dependencies(self) -> dict[str, list | None]:
        """Fact -> None (the run depends on its exact value) or the comparisons it depends on.

        Merged over consumers: one exact dependency makes the fact exact.
        """
        merged: dict[str, list | None] = {}
        for (_consumer, name), conditions in self._deps.items():
            if conditions is None or merged.get(name, ()) is None:
                merged[name] = None
            else:
                merged.setdefault(name, []).extend(conditions)
        return merged

    def memo_blocker(self) -> str | None:
        """Why this run's facts cannot be re-checked by the warm replay, or None."""
        if self._overrides:
            return "facts are overridden"
        if self.hermetic:
            return "hermetic run"
        for name in self._values:
            if not isinstance(self.registry.spec_for(name).probe, BuiltinProbe):
                return f"fact {name} has a plugin probe"
        return None

    def probe_table(self) -> dict[str, tuple[str, str, str]]:
        """Fact -> (probe module, function, fact type) for every fact probed this run
        (all built-in probes: see ``memo_blocker``)."""
        table = {}
        for name in self._values:
            spec = self.registry.spec_for(name)
            table[name] = (spec.probe.module, spec.probe.function, spec.type)
        return table

    def _value(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        spec = self.registry.spec_for(name)
        if spec is None:
            raise KeyError(name)
        self._asked.setdefault(name)
        if name in self._overrides:
            value, reason, source = self._overrides[name], "given as null", "override"
        elif self.hermetic and not spec.from_invocation:
            value, reason, source = None, HERMETIC_REASON, "hermetic"
        else:
            value, reason = self._probe(spec)
            source = self._sources.get(name, "probe")
        self._values[name] = value
        self._sources[name] = source
        if value is None:
            self._reasons[name] = reason
        return value

    def _probe(self, spec) -> tuple[Any, str | None]:
        # Every failure becomes null plus a reason: no probe may take a run down.
        name = spec.name
        if name in self._probing:
            return None, f"fact {name} depends on itself"
        self._probing.add(name)
        try:
            if isinstance(spec.probe, BuiltinProbe):
                value = spec.probe.run(ProbeSession(self, name))
            else:
                value = spec.probe(self.ctx)
        except FactUnknown as exc:
            return None, str(exc) or "unknown"
        except Exception as exc:  # noqa: BLE001 - a probe bug must not be fatal
            return None, f"probe failed: {type(exc).__name__}: {exc}"
        finally:
            self._probing.discard(name)
        if value is None:
            return None, "the probe found no value"
        if not matches_type(spec.type, value):
            return None, f"the probe returned {value!r}, not a {spec.type}"
        return value, None

    def _shared_value(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._shared:
            try:
                self._shared[key] = (True, compute())
            except FactUnknown as exc:
                self._shared[key] = (False, exc)
        ok, value = self._shared[key]
        if not ok:
            raise FactUnknown(str(value))
        return value

    def _probe_cache(self):
        if self._cache is None:
            from buildpolicy.facts.cache import ProbeCache

            self._cache = ProbeCache.for_context(self.ctx)
        return self._cache

    def unknown_reason(self, name: str) -> str | None:
        """Why fact ``name`` is null, or None when it has a value (probes it if needed)."""
        if self._value(name) is not None:
            return None
        return self._reasons.get(name, "unknown")

    def source(self, name: str) -> str:
        """Where fact ``name`` came from: ``probe``, ``cache``, ``override`` or ``hermetic``."""
        self._value(name)
        return self._sources[name]

    def probe_state(self) -> tuple[int, int]:
        """Changes whenever ``probed()`` may have: how many facts were asked for and how
        many have a value (both only grow, and a value never changes once found)."""
        return len(self._asked), len(self._values)

    def probed(self) -> dict[str, Any]:
        """Every fact asked for so far (including facts other probes read), in ask order."""
        return {name: self._values[name] for name in self._asked if name in self._values}

    def probe_all(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Probe ``names`` (default: every static fact, listed tools included) and return them."""
        names = self.registry.known_fact_names() if names is None else list(names)
        return {name: self._value(name) for name in names}

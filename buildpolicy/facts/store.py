"""Lazy, memoized fact values for one run, with overrides and the reason a fact is unknown."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from buildpolicy.errors import BuildpolicyError
from buildpolicy.facts.coerce import coerce_fact, matches_type
from buildpolicy.facts.context import FactUnknown, ProbeContext
from buildpolicy.facts.registry import BuiltinProbe, FactSpec, make_registry

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

    def probed(self) -> dict[str, Any]:
        """Every fact asked for so far (including facts other probes read), in ask order."""
        return {name: self._values[name] for name in self._asked if name in self._values}

    def probe_all(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Probe ``names`` (default: every static fact, listed tools included) and return them."""
        names = self.registry.known_fact_names() if names is None else list(names)
        return {name: self._value(name) for name in names}

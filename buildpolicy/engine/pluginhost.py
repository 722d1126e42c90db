"""Build the plugin manager and call hooks through one typed facade.

Plugins are found in three places, registered in this order (a later plugin's
decision replaces an earlier one of the same name, so third-party plugins can
replace built-ins on purpose):

1. the ``buildpolicy`` entry-point group of the buildpolicy distribution itself
   (the built-in plugins in the top-level ``plugins/`` directory);
2. the same group in every other installed distribution (third-party);
3. team-local modules named by ``plugin_paths`` in the profile file.

Hooks are called one implementation at a time (``PluginHost``), so a plugin
that raises or returns the wrong type is reported by name in
``PluginHost.warnings`` and skipped: it cannot take the others down (DESIGN
§8). A ``BuildpolicyError`` is the exception: a plugin raises it on purpose to
refuse (exit 2 or 75), and it propagates. For the firstresult hooks
(``buildpolicy_render_env``, ``buildpolicy_wrap_exec``) the order is pluggy's:
the last registered plugin is asked first, so a third-party or team-local
plugin gets the plan before the built-ins; the first non-None result wins.

Plugins are pluggy plugins, but registered in ``engine/hookregistry.py``, which
reads pluggy's markers and follows pluggy's rules without importing pluggy (the
full evaluation at the prompt would spend more time importing it than deciding).

Scanning installed distributions for entry points is slow, so the list is
cached, keyed by the modification times of the ``sys.path`` directories
(installing or removing a package changes them).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy import PROJECT_NAME
from buildpolicy.engine import hookspecs
from buildpolicy.engine.hookregistry import HookRegistry, PluginValidationError
from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import Decision, KnobSpec
from buildpolicy.filestate import json_text, load_state_json, sys_path_state, write_state
from buildpolicy.policy.entrypoints import scan

ENTRY_POINT_GROUP = "buildpolicy"
BUILTIN_DIST = "buildpolicy"


def discover_entry_points(cache_dir: Path | None) -> list[tuple[str, str, str]]:
    """Return ``(name, "module[:attr]", distribution)`` for the ``buildpolicy`` group.

    Built-in (buildpolicy's own) entry points come first. Uses the cache in
    ``cache_dir`` when the ``sys.path`` fingerprint matches.
    """
    fingerprint = sys_path_state()
    cache_file = cache_dir / "entry-points.json" if cache_dir else None
    if cache_file is not None:
        # A missing, unsafe (another user's, a FIFO…) or corrupt cache reads as None and is rebuilt:
        # entry points name modules that are imported, so only this user's own cache is believed.
        cached = load_state_json(cache_file)
        try:
            if isinstance(cached, dict) and cached.get("fingerprint") == fingerprint:
                entries = [tuple(item) for item in cached["entry_points"]]
                if all(len(item) == 3 and all(isinstance(part, str) for part in item) for item in entries):
                    return entries
        except (KeyError, TypeError):
            pass  # a corrupt cache is rebuilt
    found: dict[tuple[str, str], tuple[str, str, str]] = {}
    for name, value, dist_name in scan(ENTRY_POINT_GROUP):
        # The same distribution can be visible twice on sys.path (an
        # editable install plus a source tree): keep the first.
        found.setdefault((dist_name, name), (name, value, dist_name))
    result = sorted(found.values(), key=lambda item: (item[2] != BUILTIN_DIST, item[2], item[0]))
    if cache_file is not None:
        try:
            payload = {"fingerprint": fingerprint, "entry_points": result}
            write_state(cache_file, json_text(payload).encode())
        except OSError:
            pass
    return result


def _load_object(value: str) -> Any:
    module_name, _, attr = value.partition(":")
    obj = importlib.import_module(module_name.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj


class PluginHost:
    """The one place hooks are called, results flattened, checked and attributed."""

    def __init__(self, registry: HookRegistry, load_errors: list[str]):
        self.registry = registry
        self.load_errors = load_errors
        self.warnings: list[str] = []
        self._knob_specs: tuple[KnobSpec, ...] | None = None  # what knob_specs found, once

    def plugin_names(self) -> list[str]:
        """Registered plugin names in registration order."""
        return [name for name, _ in self.registry.list_name_plugin()]

    def _warn(self, plugin: str, message: str) -> None:
        text = f"plugin {plugin!r} {message}"
        if text not in self.warnings:
            self.warnings.append(text)

    def _call(self, impl, hook_name: str, kwargs: dict[str, Any]) -> tuple[bool, Any]:
        """Call one implementation: ``(True, result)``, or ``(False, None)`` when it raised.

        A ``BuildpolicyError`` is a deliberate refusal (an undeclared feature
        profile: exit 2; no build host while one is required: exit 75) and is
        re-raised; any other exception is reported by plugin name and skipped.
        """
        args = {name: kwargs[name] for name in impl.argnames}
        try:
            return True, impl.function(**args)
        except BuildpolicyError:
            raise
        except Exception as exc:  # noqa: BLE001 - isolate plugin failures
            self._warn(impl.plugin_name, f"failed in {hook_name}: {type(exc).__name__}: {exc}")
            return False, None

    def _impls(self, hook_name: str) -> list[Any]:
        """The plain implementations of a hook in registration order, `tryfirst`/`trylast` respected (wrappers are not supported)."""
        return [impl for impl in self.registry.hookimpls(hook_name) if not (impl.hookwrapper or impl.wrapper)]

    def _each(self, hook_name: str, before=None, **kwargs) -> Iterable[tuple[str, Any]]:
        """Call every implementation of a hook separately, in registration order.

        A plugin that raises is reported by name (in ``warnings``) and skipped,
        so one broken plugin cannot take the others down. ``before(plugin_name)``
        runs before each call.
        """
        for impl in self._impls(hook_name):  # registration order
            if before is not None:
                before(impl.plugin_name)
            ok, result = self._call(impl, hook_name, kwargs)
            if ok:
                yield impl.plugin_name, result

    def _first(self, hook_name: str, accept: Any, expected: str, **kwargs) -> Any:
        """firstresult, one implementation at a time: the first acceptable non-None result.

        The order is pluggy's own for a firstresult hook: the *last* registered
        plugin is asked first (``tryfirst``/``trylast`` respected), so a
        third-party or team-local plugin is offered the call before the
        built-ins. A plugin that raises, or returns something ``accept`` rejects
        (described by ``expected``), is reported by name and the next one asked.
        """
        for impl in reversed(self._impls(hook_name)):
            ok, result = self._call(impl, hook_name, kwargs)
            if not ok or result is None:
                continue
            if not accept(result):
                self._warn(impl.plugin_name, f"returned {type(result).__name__} from {hook_name}, not {expected}; ignored")
                continue
            return result
        return None

    def knob_specs(self) -> list[KnobSpec]:
        """Knobs declared by plugins; a knob declared twice is an error naming both plugins.

        A declaration that is not a list of ``KnobSpec`` (or a spec of an
        unknown type) is reported by plugin name and skipped. The hooks run once per
        manager: the engine asks twice (for the knob names rules may not set, and for
        the knobs themselves).
        """
        if self._knob_specs is not None:
            return list(self._knob_specs)
        from buildpolicy.model import KNOB_TYPES

        seen: dict[str, KnobSpec] = {}
        errors = []
        for plugin, specs in self._each("buildpolicy_declare_knobs"):
            for spec in self._items(plugin, "buildpolicy_declare_knobs", specs):
                if not isinstance(spec, KnobSpec) or not isinstance(spec.name, str) or not spec.name:
                    self._warn(plugin, f"declared {type(spec).__name__} {spec!r:.60}, not a KnobSpec; ignored")
                    continue
                if spec.type not in KNOB_TYPES:
                    self._warn(plugin, f"declared knob {spec.name!r} of unknown type {spec.type!r} "
                                       f"(allowed: {', '.join(KNOB_TYPES)}); ignored")
                    continue
                spec = spec if spec.declared_by else _with_owner(spec, f"plugin {plugin}")
                if spec.name in seen:
                    errors.append(
                        f"knob {spec.name!r} is declared by both {seen[spec.name].declared_by} and plugin {plugin!r}"
                    )
                    continue
                seen[spec.name] = spec
        if errors:
            raise BuildpolicyError(errors)
        self._knob_specs = tuple(seen.values())
        return list(self._knob_specs)

    def fact_specs(self) -> list[Any]:
        """Extra facts declared by plugins (``FactSpec`` objects); anything else is reported and skipped."""
        from buildpolicy.facts.store import FactSpec

        specs = []
        for plugin, result in self._each("buildpolicy_declare_facts"):
            for spec in self._items(plugin, "buildpolicy_declare_facts", result):
                if not isinstance(spec, FactSpec) or not isinstance(spec.name, str) or not spec.name:
                    self._warn(plugin, f"declared {type(spec).__name__} {spec!r:.60}, not a FactSpec; ignored")
                    continue
                specs.append(spec)
        return specs

    def _items(self, plugin: str, hook_name: str, result: Any) -> list[Any]:
        """The items of a declaration hook's result; a non-list is reported and counts as none."""
        if result is None:
            return []
        if isinstance(result, (str, bytes, dict)) or not isinstance(result, Iterable):
            self._warn(plugin, f"returned {type(result).__name__} from {hook_name}, not a list; ignored")
            return []
        try:
            return list(result)
        except BuildpolicyError:
            raise
        except Exception as exc:  # noqa: BLE001 - a generator that raises half-way
            self._warn(plugin, f"failed in {hook_name}: {type(exc).__name__}: {exc}")
            return []

    def decide(self, ctx: Any) -> dict[str, Decision]:
        """Collect every plugin's decisions; a later plugin replaces an earlier one by name."""
        decisions: dict[str, Decision] = {}
        facts = getattr(ctx, "facts", None)

        def consumer(plugin: str) -> None:
            # Facts a plugin reads are its dependencies (buildpolicy.replay).
            if hasattr(facts, "consumer"):
                facts.consumer = f"plugin {plugin}"

        for plugin, result in self._each("buildpolicy_decide", before=consumer, ctx=ctx):
            if result is None:
                continue
            for decision in result if isinstance(result, (list, tuple)) else [result]:
                if not isinstance(decision, Decision):
                    self.warnings.append(f"plugin {plugin!r} returned {type(decision).__name__}, not a Decision; ignored")
                    continue
                if decision.name in decisions:
                    ctx.warn(
                        f"decision {decision.name!r} of plugin {decisions[decision.name].source!r} "
                        f"is replaced by plugin {plugin!r}"
                    )
                decisions[decision.name] = _attributed(decision, plugin)
        if hasattr(facts, "consumer"):
            facts.consumer = "engine"
        return decisions

    def not_replayable(self) -> list[str]:
        """Plugins deciding things that do not declare ``BUILDPOLICY_REPLAYABLE = True``
        (see ``buildpolicy.replay``): a warm ``env`` cannot re-check what they read."""
        return [
            f"plugin {impl.plugin_name} is not declared replayable"
            for impl in self._impls("buildpolicy_decide")
            if getattr(impl.plugin, "BUILDPOLICY_REPLAYABLE", False) is not True
        ]

    def render_env(self, **kwargs) -> str | None:
        """Ask plugins to render an unknown env format (firstresult, last registered first).

        When no plugin renders it and one failed trying, that failure is the
        error (naming the plugin) rather than a silent "unknown format".
        """
        before = len(self.warnings)
        text = self._first("buildpolicy_render_env", lambda r: isinstance(r, str), "a str", **kwargs)
        if text is None and len(self.warnings) > before:
            raise BuildpolicyError(self.warnings[before:])
        return text

    def wrap_exec(self, plan: Any, ctx: Any) -> Any:
        """Offer the exec plan to plugins (firstresult, last registered first); return the plan to run.

        A plugin that raises (other than a deliberate ``BuildpolicyError``) or
        returns something that is not an ``ExecPlan`` is reported in
        ``warnings`` and the next plugin asked; with no taker the plan runs as it is.
        """
        from buildpolicy.engine.context import ExecPlan

        wrapped = self._first("buildpolicy_wrap_exec", lambda r: isinstance(r, ExecPlan), "an ExecPlan", plan=plan, ctx=ctx)
        return wrapped or plan


def _with_owner(spec: KnobSpec, plugin: str) -> KnobSpec:
    from buildpolicy.record import evolve

    return evolve(spec, declared_by=plugin)


def _attributed(decision: Decision, plugin: str) -> Decision:
    from buildpolicy.record import evolve

    return evolve(decision, source=plugin)


def make_plugin_manager(
    *,
    cache_dir: Path | None = None,
    plugin_paths: Iterable[Path] = (),
    plugin_digests: Mapping[str, str] | None = None,
    project_root: str | None = None,
    disabled: Iterable[str] = (),
    extra_plugins: Iterable[tuple[str, Any]] = (),
    entry_points: bool = True,
) -> PluginHost:
    """Build a fresh plugin manager: specs, entry points, team-local modules.

    ``disabled`` names plugins not to register; ``extra_plugins`` are
    ``(name, object)`` pairs registered last (tests use throwaway classes).
    Team-local modules (``plugin_paths``) and the repository modules they import
    run from bytes matching ``plugin_digests`` (path → SHA-256 that ``allow``
    recorded; None checks nothing) under an import guard for ``project_root``
    (``buildpolicy.engine.teamcode``).
    A plugin that cannot be imported is reported, not fatal.
    """
    registry = HookRegistry(PROJECT_NAME)
    registry.add_hookspecs(hookspecs)
    disabled = set(disabled)
    errors: list[str] = []

    def register(name: str, loader) -> None:
        if name in disabled or registry.has_plugin(name):
            return
        try:
            registry.register(loader(), name=name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the run
            errors.append(f"plugin {name!r} could not be loaded: {type(exc).__name__}: {exc}")

    if entry_points:
        for name, value, _dist in discover_entry_points(cache_dir):
            register(name, lambda value=value: _load_object(value))
    plugin_paths = [str(path) for path in plugin_paths]
    if plugin_paths:
        from buildpolicy.engine.teamcode import install_guard, load_plugin

        guard = install_guard(plugin_paths, project_root, plugin_digests)
        for path in plugin_paths:
            register(Path(path).stem, lambda path=path: load_plugin(path, guard))
    for name, obj in extra_plugins:
        register(name, lambda obj=obj: obj)
    try:
        registry.check_pending()
    except PluginValidationError as exc:
        name = registry.get_name(exc.plugin) or exc.plugin
        raise BuildpolicyError(f"plugin {name!r} implements a hook buildpolicy does not have: {exc}") from None
    return PluginHost(registry, errors)

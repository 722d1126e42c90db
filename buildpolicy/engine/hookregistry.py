"""A registry of pluggy plugins that does not import pluggy.

buildpolicy's plugins are pluggy plugins of the project ``buildpolicy``, marked with
``buildpolicy.hookimpl`` or ``pluggy.HookimplMarker("buildpolicy")``. Importing pluggy
(with ``inspect``, ``ast``, ``dis`` and ``tokenize`` behind it) cost a full ``env``
evaluation at the prompt more than everything the plugins then did, so the plugin host
registers them here instead, following pluggy's ``PluginManager`` rule for rule
(``tests/test_hookregistry.py`` compares the two):

- hook implementations are the functions, bound methods, static and class methods of
  ``dir(plugin)`` carrying a ``buildpolicy_impl`` options dict, found without running
  properties or other descriptors; ``specname`` names the hook they implement;
- their argument names are pluggy's ``varnames``: the positional parameters without
  defaults, the bound ``self`` dropped;
- within a hook, implementations are ordered as ``HookCaller._add_hookimpl`` orders them
  (``trylast`` first, ``tryfirst`` last, the others in registration order, wrappers after
  all of them);
- registering fails with pluggy's errors and messages: a name or a plugin object
  registered twice (``ValueError``), an implementation asking for an argument its
  specification does not have (``PluginValidationError``); ``check_pending`` fails on an
  implementation of a hook without a specification unless it is an ``optionalhook``.

Hooks are not called here: ``engine/pluginhost.py`` calls each implementation itself.
"""

from __future__ import annotations

import sys
from types import FunctionType, MemberDescriptorType, MethodType, ModuleType

_ABSENT = object()
# pluggy's `varnames` drops a first parameter of these names from a function defined in a class.
_IMPLICIT_NAMES = ("self", "cls", "obj") if sys.implementation.name == "pypy" else ("self", "cls")
# pluggy's `normalize_hookimpl_opts`: the options a marker of an older pluggy may not have set.
_IMPL_DEFAULTS = (("tryfirst", False), ("trylast", False), ("wrapper", False), ("hookwrapper", False),
                  ("optionalhook", False), ("specname", None))


class PluginValidationError(Exception):
    """A plugin failed validation (pluggy's exception of the same name); ``plugin`` is the object."""

    def __init__(self, plugin: object, message: str) -> None:
        super().__init__(message)
        self.plugin = plugin


def varnames(function: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The positional parameter names of a callable without and with defaults, as pluggy's ``varnames``.

    An already-bound first parameter (a bound method's ``self``, a class's ``__init__``)
    is left out, and so is a first ``self``/``cls`` of a function defined in a class.
    Plain functions and bound methods are read from their ``__code__``; anything else
    (classes, callable objects, decorated functions) goes through pluggy's own steps,
    with ``inspect`` imported for them only.
    """
    if type(function) is FunctionType and not hasattr(function, "__wrapped__"):
        func, is_bound = function, False
    elif type(function) is MethodType and type(function.__func__) is FunctionType and not hasattr(function, "__wrapped__"):
        func, is_bound = function.__func__, True
    else:
        func, is_bound = _unwrapped(function)
    try:
        code = func.__code__
        defaults = func.__defaults__
        qualname = func.__qualname__
    except AttributeError:
        return (), ()
    args = code.co_varnames[: code.co_argcount]
    kwargs: tuple[str, ...] = ()
    if defaults:
        args, kwargs = args[: -len(defaults)], args[-len(defaults):]
    # A dot left after the last "<locals>." means a function defined in a class.
    in_class = "." in qualname.rsplit("<locals>.", maxsplit=1)[-1]
    if args and (is_bound or (in_class and args[0] in _IMPLICIT_NAMES)):
        args = args[1:]
    return args, kwargs


def _unwrapped(func: object) -> tuple[object, bool]:
    """pluggy's way from an exotic callable to the function with the code, and whether it is bound."""
    import inspect

    is_bound = False
    if inspect.isclass(func):
        try:
            func = func.__init__
        except AttributeError:
            return None, False
        is_bound = True
    elif not inspect.isroutine(func):  # a callable object: its __call__
        try:
            func = getattr(func, "__call__", func)  # noqa: B004 - the attribute itself is wanted
        except Exception:  # noqa: BLE001 - pluggy's own tolerance
            return None, False
    if inspect.ismethod(func):
        is_bound = True
    func = inspect.unwrap(func)
    if inspect.ismethod(func):
        is_bound = True
        func = func.__func__
    return func, is_bound


def _static_lookup(obj: object, name: str) -> object:
    """``inspect.getattr_static`` for what a hook can be: the attribute on the class (or a
    module's own), without running descriptors; a class's metaclass is searched last."""
    if isinstance(obj, ModuleType):
        return _instance_dict(obj).get(name, _ABSENT)
    klass = obj if isinstance(obj, type) else type(obj)
    for owner in (klass, type(klass)) if obj is klass else (klass,):
        for entry in owner.__mro__:
            value = entry.__dict__.get(name, _ABSENT)
            if value is not _ABSENT:
                return value
    return _ABSENT


def _instance_dict(obj: object) -> dict:
    """``obj``'s own ``__dict__``, read without ``getattr``."""
    try:
        found = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return {}
    return found if isinstance(found, dict) else {}


def hook_attribute(obj: object, name: str) -> tuple[object, object] | None:
    """``(marker holder, function)`` for ``obj.name``, or None when it cannot be a hook.

    pluggy's ``_static_hook_attr``: only functions, bound methods, static and class
    methods count; properties and other descriptors are not run. The holder is what may
    carry the marker (a static or class method's wrapper when marked above it); the
    function is bound as ``getattr`` would bind it.
    """
    is_namespace = isinstance(obj, (type, ModuleType))
    if not is_namespace:
        # What the instance holds itself (its __dict__ or a slot) is handed out unbound.
        value = _instance_dict(obj).get(name, _ABSENT)
        if value is _ABSENT:
            slot = _static_lookup(obj, name)
            if isinstance(slot, MemberDescriptorType):
                try:
                    value = slot.__get__(obj, type(obj))
                except AttributeError:
                    value = _ABSENT
        if value is not _ABSENT:
            if isinstance(value, MethodType):
                return value.__func__, value
            return (value, value) if isinstance(value, FunctionType) else None
    static = _static_lookup(obj, name)
    if isinstance(static, staticmethod):
        return static, static.__func__
    if isinstance(static, classmethod):
        owner = obj if isinstance(obj, type) else type(obj)
        return static, static.__get__(owner, owner)
    if isinstance(static, MethodType):
        return static.__func__, static
    if isinstance(static, FunctionType):
        return (static, static) if is_namespace else (static, static.__get__(obj, type(obj)))
    return None


def marker_options(holder: object, attribute: str) -> dict | None:
    """The options dict a marker left on ``holder`` (or on its ``__func__``), else None."""
    opts = getattr(holder, attribute, None)
    if opts is None:
        func = getattr(holder, "__func__", None)
        opts = getattr(func, attribute, None) if func is not None else None
    return opts if isinstance(opts, dict) else None


def _marked(obj: object, marker_attribute: str):
    """``(attribute name, function, options)`` for each hookable attribute of ``obj`` that
    carries a marker's options, in ``dir`` order (pluggy's)."""
    for name in dir(obj):
        found = hook_attribute(obj, name)
        opts = marker_options(found[0], marker_attribute) if found else None
        if opts is not None:
            yield name, found[1], opts


class HookSpec:
    """A hook specification: its name, function, options and argument names."""

    __slots__ = ("name", "namespace", "function", "argnames", "kwargnames", "opts")

    def __init__(self, namespace: object, name: str, opts: dict) -> None:
        self.name = name
        self.namespace = namespace
        self.function = getattr(namespace, name)
        self.argnames, self.kwargnames = varnames(self.function)
        self.opts = opts


class HookImpl:
    """One implementation of a hook, with the attributes of pluggy's ``HookImpl``."""

    __slots__ = ("function", "argnames", "kwargnames", "plugin", "opts", "plugin_name",
                 "wrapper", "hookwrapper", "optionalhook", "tryfirst", "trylast")

    def __init__(self, plugin: object, plugin_name: str, function: object, opts: dict) -> None:
        self.function = function
        self.argnames, self.kwargnames = varnames(function)
        self.plugin = plugin
        self.opts = opts
        self.plugin_name = plugin_name
        self.wrapper = opts["wrapper"]
        self.hookwrapper = opts["hookwrapper"]
        self.optionalhook = opts["optionalhook"]
        self.tryfirst = opts["tryfirst"]
        self.trylast = opts["trylast"]

    def __repr__(self) -> str:
        return f"<HookImpl plugin_name={self.plugin_name!r}, plugin={self.plugin!r}>"


class Hook:
    """A hook's specification (None while unknown) and its implementations in pluggy's order."""

    __slots__ = ("name", "spec", "impls")

    def __init__(self, name: str, spec: HookSpec | None = None) -> None:
        self.name = name
        self.spec = spec
        self.impls: list[HookImpl] = []

    def add(self, impl: HookImpl) -> None:
        """Insert where pluggy's ``HookCaller._add_hookimpl`` does (its call order, reversed)."""
        impls = self.impls
        split = next((i for i, other in enumerate(impls) if other.hookwrapper or other.wrapper), len(impls))
        start, end = (split, len(impls)) if impl.hookwrapper or impl.wrapper else (0, split)
        if impl.trylast:
            impls.insert(start, impl)
        elif impl.tryfirst:
            impls.insert(end, impl)
        else:  # after the last one not marked tryfirst
            i = end - 1
            while i >= start and impls[i].tryfirst:
                i -= 1
            impls.insert(i + 1, impl)


class HookRegistry:
    """Plugins and their hook implementations, registered and checked as pluggy does."""

    def __init__(self, project_name: str) -> None:
        self.project_name = project_name
        self._spec_attribute = project_name + "_spec"
        self._impl_attribute = project_name + "_impl"
        self._plugins: dict[str, object] = {}
        self._hooks: dict[str, Hook] = {}

    def add_hookspecs(self, namespace: object) -> None:
        """Add the hook specifications marked in a module or class."""
        names = []
        for name, _function, opts in _marked(namespace, self._spec_attribute):
            hook = self._hooks.setdefault(name, Hook(name))
            if hook.spec is not None:
                raise ValueError(f"Hook {name!r} is already registered within namespace {hook.spec.namespace}")
            hook.spec = HookSpec(namespace, name, opts)
            for impl in hook.impls:  # registered before the specification was known
                _verify(hook, impl)
            names.append(name)
        if not names:
            raise ValueError(f"did not find any {self.project_name!r} hooks in {namespace!r}")

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register a plugin's hook implementations under ``name``; return the name.

        A name or plugin object registered already is a ``ValueError``, an implementation
        asking for an argument its hook's specification lacks a ``PluginValidationError``;
        either way nothing is registered. ``None`` is ignored, as pluggy ignores it.
        """
        if plugin is None:
            return None
        plugin_name = name or getattr(plugin, "__name__", None) or str(id(plugin))
        if plugin_name in self._plugins:
            raise ValueError(f"Plugin name already registered: {plugin_name}={plugin}\n{self._plugins}")
        if plugin in self._plugins.values():
            raise ValueError(f"Plugin already registered under a different name: {plugin_name}={plugin}\n{self._plugins}")
        found = []
        for attribute, function, opts in _marked(plugin, self._impl_attribute):
            for key, default in _IMPL_DEFAULTS:
                opts.setdefault(key, default)
            impl = HookImpl(plugin, plugin_name, function, opts)
            hook_name = opts.get("specname") or attribute
            hook = self._hooks.get(hook_name)
            if hook is not None and hook.spec is not None:
                _verify(hook, impl)
            found.append((hook_name, impl))
        self._plugins[plugin_name] = plugin
        for hook_name, impl in found:
            self._hooks.setdefault(hook_name, Hook(hook_name)).add(impl)
        return plugin_name

    def check_pending(self) -> None:
        """Fail on the first implementation of a hook without a specification not marked ``optionalhook``."""
        for name, hook in self._hooks.items():
            if hook.spec is None:
                for impl in hook.impls:
                    if not impl.optionalhook:
                        raise PluginValidationError(impl.plugin, f"unknown hook {name!r} in plugin {impl.plugin!r}")

    def has_plugin(self, name: str) -> bool:
        """Whether a plugin is registered under ``name``."""
        return self._plugins.get(name) is not None

    def get_name(self, plugin: object) -> str | None:
        """The name ``plugin`` is registered under, or None."""
        return next((name for name, value in self._plugins.items() if value == plugin), None)

    def list_name_plugin(self) -> list[tuple[str, object]]:
        """``(name, plugin)`` of every registered plugin, in registration order."""
        return list(self._plugins.items())

    def hookimpls(self, hook_name: str) -> list[HookImpl]:
        """The implementations of a hook, in pluggy's order (its calls run them last to first)."""
        hook = self._hooks.get(hook_name)
        return list(hook.impls) if hook is not None else []


def _verify(hook: Hook, impl: HookImpl) -> None:
    """pluggy's ``_verify_hook``: what an implementation may ask of its specification."""
    spec = hook.spec
    if spec.opts.get("historic") and (impl.hookwrapper or impl.wrapper):
        raise PluginValidationError(
            impl.plugin,
            f"Plugin {impl.plugin_name!r}\nhook {hook.name!r}\nhistoric incompatible with yield/wrapper/hookwrapper",
        )
    if spec.opts.get("warn_on_impl"):
        _warn_for_function(spec.opts["warn_on_impl"], impl.function)
    not_in_spec = set(impl.argnames) - (set(spec.argnames) | set(spec.kwargnames))
    if not_in_spec:
        raise PluginValidationError(
            impl.plugin,
            f"Plugin {impl.plugin_name!r} for hook {hook.name!r}\nhookimpl definition: {_formatdef(impl.function)}\n"
            f"Argument(s) {not_in_spec} are declared in the hookimpl but can not be found in the hookspec",
        )
    arg_warnings = spec.opts.get("warn_on_impl_args")
    if arg_warnings:
        for argname in impl.argnames + impl.kwargnames:
            if arg_warnings.get(argname) is not None:
                _warn_for_function(arg_warnings[argname], impl.function)
    if impl.wrapper or impl.hookwrapper:
        import inspect

        if not inspect.isgeneratorfunction(impl.function):
            raise PluginValidationError(
                impl.plugin,
                f"Plugin {impl.plugin_name!r} for hook {hook.name!r}\nhookimpl definition: {_formatdef(impl.function)}\n"
                "Declared as wrapper=True or hookwrapper=True but function is not a generator function",
            )
        if impl.wrapper and impl.hookwrapper:
            raise PluginValidationError(
                impl.plugin,
                f"Plugin {impl.plugin_name!r} for hook {hook.name!r}\nhookimpl definition: {_formatdef(impl.function)}\n"
                "The wrapper=True and hookwrapper=True options are mutually exclusive",
            )


def _formatdef(func: object) -> str:
    import inspect  # for an error message only

    return f"{func.__name__}{inspect.signature(func)}"


def _warn_for_function(warning: Warning, function: object) -> None:
    import warnings

    warnings.warn_explicit(warning, type(warning), lineno=function.__code__.co_firstlineno,
                           filename=function.__code__.co_filename)

"""buildpolicy's own plugin registry keeps pluggy's plugin contract (issue 13 item 3).

The full evaluation at the prompt no longer imports pluggy: ``engine/hookregistry.py``
registers the plugins. Every check here runs the same plugins through a real
``pluggy.PluginManager("buildpolicy")`` too and expects the same answer: which
functions implement each hook, in which order, asking for which arguments, and which
plugins are refused with which message.
"""

from __future__ import annotations

import functools

import pluggy
import pytest

from buildpolicy import PROJECT_NAME, hookimpl, hookspec
from buildpolicy.engine import hookspecs
from buildpolicy.engine.hookregistry import HookRegistry, PluginValidationError
from buildpolicy.engine.pluginhost import _load_object, discover_entry_points, make_plugin_manager
from buildpolicy.errors import BuildpolicyError
from tests.conftest import write

pluggy_hookimpl = pluggy.HookimplMarker("buildpolicy")


# --- plugins written every way pluggy accepts -------------------------------------------


class Early:
    """tryfirst, specname, a default argument and a wrapper."""

    @hookimpl(tryfirst=True)
    def buildpolicy_decide(self, ctx):
        return None

    @hookimpl(specname="buildpolicy_decide")
    def decide_again(self, ctx):
        return None

    @hookimpl
    def buildpolicy_render_env(self, set_env, fmt, shell="posix"):
        return None

    @hookimpl(hookwrapper=True)
    def buildpolicy_wrap_exec(self, plan):
        yield



class WithProperty:
    """A property named like a hook: pluggy 1.7 never evaluates it while looking hooks up
    (1.6 did, and raised); neither does the registry."""

    @property
    def buildpolicy_declare_knobs(self):
        raise AssertionError("a property is never evaluated while hooks are looked up")


class Late:
    """trylast, an optional hook no specification has, and the static and class method kinds."""

    @hookimpl(trylast=True)
    def buildpolicy_decide(self, ctx):
        return None

    @hookimpl(optionalhook=True)
    def buildpolicy_some_future_hook(self, anything):
        return None

    @hookimpl
    @staticmethod
    def buildpolicy_declare_knobs():
        return []

    @classmethod
    @hookimpl(tryfirst=True)
    def buildpolicy_declare_facts(cls):
        return []


class PluggyMarked:
    """Marked with pluggy's own marker, as a third-party plugin is."""

    @pluggy_hookimpl(tryfirst=True)
    def buildpolicy_render_env(self, set_env, unset, shell, fmt):
        return None

    @pluggy_hookimpl(trylast=True, specname="buildpolicy_decide")
    def late_decision(self, ctx):
        return None


def _logged(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)
    return wrapper


class Decorated:
    """A hook behind functools.wraps: its argument names are the wrapped function's."""

    @hookimpl
    @_logged
    def buildpolicy_wrap_exec(self, plan, ctx):
        return None


@hookimpl
def loose_knobs():
    return []


class HoldsFunctions:
    """A plain function stored on the instance: handed out unbound, as getattr would."""

    def __init__(self):
        self.buildpolicy_declare_knobs = hookimpl(lambda: [])


class ClassPlugin:
    """A class registered itself (not an instance): its methods are unbound functions."""

    @hookimpl(trylast=True)
    def buildpolicy_decide(self, ctx):
        return None


def _made_in_a_function():
    @hookimpl(optionalhook=True)
    def buildpolicy_not_yet_specified(self, x):  # not a method: its `self` is an argument like any other
        return None

    return buildpolicy_not_yet_specified


class OddNames:
    """A method whose first parameter is not called self, marked as an older pluggy marked it
    (no ``wrapper`` option); a nested function kept as a static method."""

    def buildpolicy_decide(this, ctx):
        return None

    buildpolicy_decide.buildpolicy_impl = {"hookwrapper": False, "optionalhook": False, "tryfirst": True, "trylast": False}
    buildpolicy_not_yet_specified = staticmethod(_made_in_a_function())


def _plugins_every_way(tmp_path) -> list[tuple[str, object]]:
    builtins = [(name, _load_object(value)) for name, value, dist in discover_entry_points(tmp_path)
                if dist == "buildpolicy"]
    assert len(builtins) >= 10
    return [*builtins, ("early", Early()), ("late", Late()), ("pluggy_marked", PluggyMarked()),
            ("decorated", Decorated()), ("holds", HoldsFunctions()), ("class_plugin", ClassPlugin), ("odd", OddNames())]


def _both(plugins) -> tuple[HookRegistry, pluggy.PluginManager]:
    ours, theirs = HookRegistry("buildpolicy"), pluggy.PluginManager("buildpolicy")
    for manager in (ours, theirs):
        manager.add_hookspecs(hookspecs)
        for name, plugin in plugins:
            assert manager.register(plugin, name=name) == name
        manager.check_pending()
    return ours, theirs


def _described(impls) -> list[tuple]:
    return [(impl.plugin_name, impl.function, impl.argnames, impl.kwargnames, impl.tryfirst, impl.trylast,
             impl.optionalhook, impl.hookwrapper, impl.wrapper) for impl in impls]


def test_every_hook_has_pluggys_implementations_order_and_argument_names(tmp_path):
    ours, theirs = _both(_plugins_every_way(tmp_path))
    assert ours.list_name_plugin() == theirs.list_name_plugin()
    hook_names = [name for name in vars(theirs.hook) if not name.startswith("_")]
    assert "buildpolicy_some_future_hook" in hook_names
    for name in hook_names:
        expected = _described(getattr(theirs.hook, name).get_hookimpls())
        assert _described(ours.hookimpls(name)) == expected, name
    # The cases above are all there, so the comparison covered them.
    decide = [(impl.plugin_name, impl.function.__name__) for impl in ours.hookimpls("buildpolicy_decide")]
    assert decide[:2] == [("class_plugin", "buildpolicy_decide"), ("pluggy_marked", "late_decision")]
    assert decide[-2:] == [("early", "buildpolicy_decide"), ("odd", "buildpolicy_decide")]
    assert ("early", "decide_again") in decide
    assert [impl.argnames for impl in ours.hookimpls("buildpolicy_wrap_exec") if impl.plugin_name == "decorated"] == [("plan", "ctx")]
    render = {impl.plugin_name: (impl.argnames, impl.kwargnames) for impl in ours.hookimpls("buildpolicy_render_env")}
    assert render["early"] == (("set_env", "fmt"), ("shell",))
    assert {"late", "holds"} <= {impl.plugin_name for impl in ours.hookimpls("buildpolicy_declare_knobs")}
    assert [impl.argnames for impl in ours.hookimpls("buildpolicy_not_yet_specified")] == [("self", "x")]
    assert ours.hookimpls("buildpolicy_decide")[-1].argnames == ("ctx",)  # odd's `this` is bound


def test_specifications_read_the_same_as_pluggys():
    ours, theirs = _both([])
    for name in hookspecs.hook_names():
        spec, their_spec = ours._hooks[name].spec, getattr(theirs.hook, name).spec
        assert (spec.argnames, spec.kwargnames, spec.opts) == (their_spec.argnames, their_spec.kwargnames, their_spec.opts)
    assert ours._hooks["buildpolicy_wrap_exec"].spec.opts["firstresult"] is True


@pytest.mark.parametrize("options", [{}, {"tryfirst": True}, {"trylast": True, "specname": "buildpolicy_decide"},
                                     {"optionalhook": True}, {"hookwrapper": True}, {"wrapper": True}])
def test_hookimpl_marks_exactly_as_pluggys_marker(options):
    def ours(ctx):
        pass

    def theirs(ctx):
        pass

    if options:
        hookimpl(**options)(ours)
        pluggy_hookimpl(**options)(theirs)
    else:
        hookimpl(ours)
        pluggy_hookimpl(theirs)
    assert ours.buildpolicy_impl == theirs.buildpolicy_impl
    assert list(ours.buildpolicy_impl) == list(theirs.buildpolicy_impl)


@pytest.mark.parametrize("options", [{}, {"firstresult": True}, {"historic": True},
                                     {"warn_on_impl": UserWarning("old"), "warn_on_impl_args": {"x": UserWarning("x")}}])
def test_hookspec_marks_exactly_as_pluggys_marker(options):
    pluggy_hookspec = pluggy.HookspecMarker("buildpolicy")
    ours, theirs = hookspec(**options)(lambda ctx: None), pluggy_hookspec(**options)(lambda ctx: None)
    assert ours.buildpolicy_spec == theirs.buildpolicy_spec
    assert list(ours.buildpolicy_spec) == list(theirs.buildpolicy_spec)
    assert hookspec(lambda: None).buildpolicy_spec == pluggy_hookspec(lambda: None).buildpolicy_spec


def test_a_historic_firstresult_spec_is_refused_as_pluggy_refuses_it():
    for marker in (hookspec, pluggy.HookspecMarker("buildpolicy")):
        with pytest.raises(ValueError, match="cannot have a historic firstresult hook"):
            marker(firstresult=True, historic=True)(lambda: None)


# --- validation: the same refusals, with pluggy's messages -------------------------------


class AsksTooMuch:
    @hookimpl
    def buildpolicy_decide(self, ctx, nosuch):
        return None


class NotAGenerator:
    @hookimpl(wrapper=True)
    def buildpolicy_decide(self, ctx):
        return None


class Typo:
    @hookimpl
    def buildpolicy_decied(self, ctx):
        return None


def _refusals(step) -> tuple[Exception, Exception]:
    """What our registry and pluggy raise when ``step(manager)`` registers the plugin."""
    raised = []
    for manager in (HookRegistry("buildpolicy"), pluggy.PluginManager("buildpolicy")):
        manager.add_hookspecs(hookspecs)
        with pytest.raises(Exception) as info:
            step(manager)
        raised.append(info.value)
    return raised[0], raised[1]


@pytest.mark.parametrize("plugin", [AsksTooMuch(), NotAGenerator()], ids=["unknown-argument", "wrapper-not-generator"])
def test_an_implementation_pluggy_refuses_at_register_is_refused_with_its_message(plugin):
    ours, theirs = _refusals(lambda manager: manager.register(plugin, name="bad"))
    assert isinstance(ours, PluginValidationError) and isinstance(theirs, pluggy.PluginValidationError)
    assert str(ours) == str(theirs) and ours.plugin is plugin


def test_an_unknown_argument_leaves_the_plugin_unregistered_and_is_reported_by_name():
    host = make_plugin_manager(entry_points=False, extra_plugins=[("asks", AsksTooMuch()), ("late", Late())])
    assert host.plugin_names() == ["late"]
    [error] = host.load_errors
    assert error.startswith("plugin 'asks' could not be loaded: PluginValidationError: Plugin 'asks' for hook 'buildpolicy_decide'")
    assert "Argument(s) {'nosuch'} are declared in the hookimpl but can not be found in the hookspec" in error


def test_a_name_registered_twice_is_refused_as_pluggy_refuses_it():
    def twice(manager):
        manager.register(Late(), name="same")
        manager.register(Early(), name="same")

    ours, theirs = _refusals(twice)
    assert type(ours) is type(theirs) is ValueError
    assert str(ours).startswith("Plugin name already registered: same=")
    assert str(theirs).startswith("Plugin name already registered: same=")


def test_an_object_registered_twice_is_refused_as_pluggy_refuses_it():
    plugin = Late()
    ours, theirs = _refusals(lambda manager: [manager.register(plugin, name=n) for n in ("one", "other")])
    assert type(ours) is type(theirs) is ValueError and str(ours) == str(theirs)
    host = make_plugin_manager(entry_points=False, extra_plugins=[("one", plugin), ("other", plugin)])
    assert host.plugin_names() == ["one"]
    assert host.load_errors == [f"plugin 'other' could not be loaded: ValueError: {ours}"]


def test_an_implementation_of_an_unknown_hook_fails_check_pending_as_in_pluggy():
    plugin = Typo()
    ours, theirs = _refusals(lambda manager: (manager.register(plugin, name="typo"), manager.check_pending()))
    assert isinstance(ours, PluginValidationError) and str(ours) == str(theirs)
    with pytest.raises(BuildpolicyError) as info:
        make_plugin_manager(entry_points=False, extra_plugins=[("typo", Typo())])
    assert str(info.value).startswith(
        "plugin 'typo' implements a hook buildpolicy does not have: unknown hook 'buildpolicy_decied' in plugin <")


def test_an_optional_hook_nobody_specified_passes_and_is_never_called():
    host = make_plugin_manager(entry_points=False, extra_plugins=[("late", Late())])
    assert host.plugin_names() == ["late"] and host.load_errors == []


# --- plugins marked with pluggy's marker are called --------------------------------------


def test_a_plugin_marked_with_pluggys_marker_is_called(cli, tmp_path):
    project = tmp_path / "proj"
    write(project / "Cargo.toml", '[package]\nname = "demo"\nversion = "0.1.0"\n')
    write(project / "buildpolicy.toml", 'plugin_paths = ["tools/third_party.py"]\n')
    write(project / "tools" / "third_party.py",
          "import pluggy\n"
          "from buildpolicy.model import Decision\n"
          "hookimpl = pluggy.HookimplMarker('buildpolicy')\n"
          "@hookimpl(tryfirst=True, specname='buildpolicy_decide')\n"
          "def decide_for_the_team(ctx):\n"
          "    return Decision('team', 1, 'on', 'pluggy-marked', set_env={'TEAM_MARK': 'pluggy'})\n"
          "@hookimpl\n"
          "def buildpolicy_render_env(set_env, fmt):\n"
          "    return 'team:' + set_env['TEAM_MARK'] + '\\n' if fmt == 'team' else None\n")
    cli("allow", cwd=project, check=True)
    assert "export TEAM_MARK='pluggy'" in cli("env", cwd=project, check=True).stdout
    assert cli("env", "--format", "team", cwd=project, check=True).stdout == "team:pluggy\n"


def test_a_property_named_like_a_hook_is_never_evaluated():
    registry = HookRegistry(PROJECT_NAME)
    registry.add_hookspecs(hookspecs)
    registry.register(WithProperty(), name="with_property")
    registry.check_pending()
    assert registry.hookimpls("buildpolicy_declare_knobs") == []

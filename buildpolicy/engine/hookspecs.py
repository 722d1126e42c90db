"""Hook specifications of buildpolicy (pluggy project name ``buildpolicy``).

Every hook is called with keyword arguments; an implementation may accept fewer
arguments than its specification, so specifications can grow without breaking
plugins. Built-in plugins (``buildpolicy_plugins``) use exactly these hooks.

Call order: the engine collects knob and fact declarations once per run, then
evaluates rules, then calls ``buildpolicy_decide`` on every plugin, then
composes the environment. ``exec`` finally offers the plan to
``buildpolicy_wrap_exec``. Hooks receive facts through the context and never
probe the machine themselves.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds

from buildpolicy import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    from buildpolicy.engine.context import DecideContext, ExecPlan
    from buildpolicy.facts import FactSpec
    from buildpolicy.model import Decision, KnobSpec


@hookspec
def buildpolicy_declare_knobs() -> list[KnobSpec]:
    """Return the knobs this plugin reads (a list of ``KnobSpec``).

    Called once per run, before knob values are resolved. A knob declared by two
    plugins is an error naming both. Not firstresult: results are flattened.
    """


@hookspec
def buildpolicy_declare_facts() -> list[FactSpec]:
    """Return extra facts this plugin provides (a list of ``FactSpec``).

    Called once per run, before policies are compiled, so rules may use the new
    fact names. A fact's probe receives the ``ProbeContext`` and must not hang
    or raise: return None for unknown. Not firstresult: results are flattened.
    """


@hookspec
def buildpolicy_decide(ctx: DecideContext) -> Decision | list[Decision] | None:
    """Return this plugin's decision(s) for the run, or None.

    Called once per run after the rules were evaluated; ``ctx`` gives facts,
    knobs, plugin options, the caller's environment and the decisions rules made
    (``ctx.policy_decision(name)``). A decision returned by a later-registered
    plugin replaces one of the same name from an earlier plugin, so third-party
    plugins can replace built-ins. An exception is reported with the plugin's
    name and the other plugins still run. Not firstresult.

    Warm replay (``buildpolicy.replay``): a plugin module that sets
    ``BUILDPOLICY_REPLAYABLE = True`` promises that its decisions depend only on
    what it reads through ``ctx``, on files it names with
    ``ctx.depends_on_file(path)``, and, for facts it only compares with
    thresholds, on the comparisons it states with ``ctx.depends_on(fact, op,
    constant)``, and, for a decision that ages, until the time it names with
    ``ctx.valid_until(when)``; it calls ``ctx.not_replayable(why)`` when a run
    depends on anything else. A deciding plugin without the flag makes every ``env`` run
    in full.
    """


@hookspec(firstresult=True)
def buildpolicy_render_env(set_env: dict[str, str], unset: list[str], shell: str, fmt: str) -> str | None:
    """Render the environment in a format buildpolicy does not know, or return None.

    Called by ``env`` only for a ``--format`` the built-in renderer lacks.
    firstresult: the first non-None string is printed as it is.
    """


@hookspec(firstresult=True)
def buildpolicy_wrap_exec(plan: ExecPlan, ctx: DecideContext) -> ExecPlan | None:
    """Return a changed execution plan for ``exec`` (e.g. run remotely), or None.

    Called by ``exec`` (and ``exec --dry-run``) after the environment is decided,
    and once more after ``exec`` took the build gate and decided again.
    ``plan.execution`` is ``{"mode": "local"}``; a plugin running the command
    elsewhere returns ``{"mode": "remote", "host": ..., "steps": [...]}`` (see
    ``buildpolicy.run.remote``). A plugin may raise ``BuildpolicyError`` to refuse
    (the remote plugin exits 75 when a build host is required and none is up).
    firstresult: the first plugin returning a plan wins.
    """


def hook_names() -> list[str]:
    """Names of every hook specified here (a test checks each is documented)."""
    return [name for name, value in globals().items() if name.startswith("buildpolicy_") and callable(value)]

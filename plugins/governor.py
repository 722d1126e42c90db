"""The ``governor`` decision (DESIGN §11): ``exec`` keeps the build inside its memory.

The plugin declares the knob and reports the decision; ``exec`` runs the
governor (``buildpolicy.run.governor``), because only ``exec`` runs a build.
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True


@hookimpl
def buildpolicy_declare_knobs():
    """Declare ``governor`` (auto|on|off)."""
    return [
        KnobSpec("governor", "enum", default="auto", values=("auto", "on", "off"),
                 description="exec governs compile-heavy cargo builds by live memory and learned crate peaks "
                             "(a jobserver, admission per rustc, preemption before the OOM killer)"),
    ]


@hookimpl
def buildpolicy_decide(ctx):
    """Report the governor: ``on:jobserver:max=N``, ``disabled-by-knob``, ``not-applicable:<why>``, ``memory-unknown``."""
    if ctx.command not in ("exec", "explain") and ctx.knob("governor") != "off":
        # What decide() answers, without importing it on `env`'s hot path.
        return Decision("governor", None, f"not-applicable:{ctx.command}",
                        f"only `exec` runs a build to govern; `{ctx.command}` runs nothing")
    from buildpolicy.run.governor.decide import decide

    return decide(ctx)

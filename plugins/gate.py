"""The ``gate`` decision (DESIGN §6 ``gate``): one compile-heavy build at a time.

The plugin declares the knobs and reports the decision; ``exec`` takes the
lock (see ``buildpolicy.run.gate``), because only ``exec`` runs a build.
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True


@hookimpl
def buildpolicy_declare_knobs():
    """Declare ``gate`` (on|off), ``gate_lock`` (the lock file) and ``gate_note_interval``."""
    return [
        KnobSpec("gate", "enum", default="on", values=("on", "off"),
                 description="exec runs compile-heavy cargo commands one at a time (host-wide flock)"),
        KnobSpec("gate_lock", "string",
                 description="the gate's lock file (default: <state dir>/gate.lock, shared by all your worktrees)"),
        KnobSpec("gate_note_interval", "seconds", default=30.0, minimum=0.1,
                 description="seconds between the notes printed while waiting for the gate"),
    ]


@hookimpl
def buildpolicy_decide(ctx):
    """Report the gate: ``disabled``, ``not-needed``, ``inherited`` or ``acquired``."""
    if ctx.command != "exec" and ctx.knob("gate") == "on":
        # The answer gate.decide() gives, without importing it on `env`'s hot path.
        return Decision("gate", None, "not-needed", f"only `exec` takes the build gate; `{ctx.command}` runs nothing")
    from buildpolicy.run import gate

    return gate.decide(ctx)

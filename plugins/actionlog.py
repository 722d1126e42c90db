"""The ``action_log`` knob: whether ``exec`` records each run in the action log.

With the log on (the default) ``exec`` runs the command as its child, because
only a process that outlives the command can record its exit status and
duration. With it off, and no build gate to hold, ``exec`` replaces itself with
the command (``os.execvpe``): nothing of buildpolicy stays in the process tree.
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import KnobSpec


@hookimpl
def buildpolicy_declare_knobs():
    """Declare the ``action_log`` knob: on | off."""
    return [
        KnobSpec(
            name="action_log",
            type="enum",
            default="on",
            values=("on", "off"),
            description="record every exec in the action log (`buildpolicy log`); off lets exec replace itself "
            "with the command when no build gate is held",
        )
    ]

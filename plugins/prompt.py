"""The ``hook_scope`` knob: where the prompt hook (``buildpolicy hook``) applies the environment.

``project`` (the default): only inside a project, a directory with a
``buildpolicy.toml`` or a ``Cargo.toml`` in it or above; anywhere else the hook
restores what the shell had before (``cd /tmp`` after working in a workspace
leaves no job count or linker flags behind). ``everywhere``: the user's and the
site's policies apply in every directory, as ``buildpolicy env`` run by hand does.

The knob only declares the choice: ``env --hook`` reads it (``buildpolicy.engine.pipeline``).
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import KnobSpec

KNOB = "hook_scope"


@hookimpl
def buildpolicy_declare_knobs():
    """Declare ``hook_scope`` (project | everywhere)."""
    return [
        KnobSpec(
            name=KNOB,
            type="enum",
            default="project",
            values=("project", "everywhere"),
            description="where the prompt hook applies the environment: inside a project (a buildpolicy.toml "
            "or a Cargo.toml in the directory or above; elsewhere it restores the shell) or everywhere",
        )
    ]

"""buildpolicy: declarative build policy for cargo.

Plugins import the hook marker from here: ``from buildpolicy import hookimpl``.
Heavy modules are imported lazily by the commands that need them, because
``buildpolicy env`` runs at every shell prompt.
"""

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "buildpolicy"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

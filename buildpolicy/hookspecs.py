"""The hook specifications, kept importable here for plugins written against
``buildpolicy.hookspecs``; they live in ``buildpolicy.engine.hookspecs``."""

from buildpolicy.engine.hookspecs import *  # noqa: F403 - the public hook specifications
from buildpolicy.engine.hookspecs import hook_names  # noqa: F401

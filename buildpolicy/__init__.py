"""buildpolicy: declarative build policy for cargo.

Plugins are pluggy plugins of the project ``buildpolicy``: they mark their hooks with
``from buildpolicy import hookimpl`` or with ``pluggy.HookimplMarker("buildpolicy")``.
The markers below set exactly the attributes pluggy's markers set
(``buildpolicy_impl``, ``buildpolicy_spec``), so pluggy's own ``PluginManager`` reads
them, and buildpolicy's plugin host (``buildpolicy.engine.hookregistry``) reads both
kinds without importing pluggy. They are plain functions, not classes: the warm ``env``
replay imports this package too, and defining a function costs far less than a class.

Heavy modules are imported lazily by the commands that need them, because
``buildpolicy env`` runs at every shell prompt.
"""

__version__ = "0.1.0"

PROJECT_NAME = "buildpolicy"


def hookspec(function=None, firstresult=False, historic=False, warn_on_impl=None, warn_on_impl_args=None):
    """Mark a hook specification, as ``pluggy.HookspecMarker("buildpolicy")`` does.

    Used bare (``@hookspec``) or with options (``@hookspec(firstresult=True)``); the
    options are pluggy's, with pluggy's defaults, stored as ``function.buildpolicy_spec``.
    """
    def mark(func):
        if historic and firstresult:
            raise ValueError("cannot have a historic firstresult hook")
        func.buildpolicy_spec = {
            "firstresult": firstresult,
            "historic": historic,
            "warn_on_impl": warn_on_impl,
            "warn_on_impl_args": warn_on_impl_args,
        }
        return func

    return mark if function is None else mark(function)


def hookimpl(function=None, hookwrapper=False, optionalhook=False, tryfirst=False, trylast=False,
             specname=None, wrapper=False):
    """Mark a hook implementation, as ``pluggy.HookimplMarker("buildpolicy")`` does.

    Used bare (``@hookimpl``) or with options (``@hookimpl(tryfirst=True)``); the
    options are pluggy's, with pluggy's defaults, stored as ``function.buildpolicy_impl``.
    """
    def mark(func):
        func.buildpolicy_impl = {
            "wrapper": wrapper,
            "hookwrapper": hookwrapper,
            "optionalhook": optionalhook,
            "tryfirst": tryfirst,
            "trylast": trylast,
            "specname": specname,
        }
        return func

    return mark if function is None else mark(function)


# What pluggy's marker objects carry, for code that reads it.
hookspec.project_name = hookimpl.project_name = PROJECT_NAME

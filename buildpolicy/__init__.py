"""buildpolicy: declarative build policy for cargo.

Plugins import the hook marker from here: ``from buildpolicy import hookimpl``.
Heavy modules are imported lazily by the commands that need them, because
``buildpolicy env`` runs at every shell prompt.
"""

__version__ = "0.1.0"

PROJECT_NAME = "buildpolicy"


def __getattr__(name: str):
    # The markers are made on first use: importing pluggy costs more than a warm
    # `env` replay in total (buildpolicy.replay), which imports this package too.
    if name in ("hookspec", "hookimpl"):
        import pluggy

        marker = pluggy.HookspecMarker if name == "hookspec" else pluggy.HookimplMarker
        value = globals()[name] = marker(PROJECT_NAME)
        return value
    raise AttributeError(f"module 'buildpolicy' has no attribute {name!r}")

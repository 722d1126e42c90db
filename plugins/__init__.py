"""Built-in buildpolicy plugins (installed as ``buildpolicy_plugins``).

Each module is one plugin registered through the ``buildpolicy`` entry-point
group, exactly like a third-party plugin.
"""

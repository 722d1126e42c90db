"""Stage 3, the engine decides: one ``Request`` in, one ``Result`` out.

Owns the run's pipeline (``pipeline``: load policies, check trust, register
plugins, resolve knobs, probe facts lazily, match rules, ask plugins, compose),
the plugin host and hook specifications (``pluginhost``, ``hookspecs``), what
plugins see (``context``: ``DecideContext``, ``ExecPlan``), rule matching
(``rules``), knob declarations (``knobspecs``), plugin option tables
(``options``), environment and rustflags
composition (``compose``), and the env-state record (``envstate``), which the
engine reads first (the caller's own environment) and writes last.

May import the base modules, ``policy`` and ``facts``. This ``__init__`` imports
nothing.
"""

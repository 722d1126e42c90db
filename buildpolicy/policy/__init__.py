"""Stage 1, policy files in: find, read, validate and compile the rules of every layer.

Owns the profile and policy file loader (``loader``, with its pickled cache), TOML
positions (``tomlpos``), JSON Schema validation (``validate``), the ``when``
expression language and ``${fact}`` templates (``expr``), knob values and their
layers (``knobs``), packs (``packs``), and trust: which files may set what, and
the ``allow`` records (``trust``). Trust sits here, not with the team tools,
because the loader classifies every entry of a project file as it reads it.

May import the base modules (``errors``, ``paths``, ``filestate``, ``model``,
``sizes``, ``data``) only. Facts reach it as names and types passed in by the
engine, never by importing ``facts``. This ``__init__`` imports nothing.
"""

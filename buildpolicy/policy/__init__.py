"""Stage 1, policy files in: find, read, validate and compile the rules of every layer.

Owns the profile and policy file loader (``loader``, with its pickled cache), TOML
positions (``tomlpos``), JSON Schema validation (``validate``, with the fast check
of rule tables in ``rulecheck``), the ``when`` expression language and ``${fact}``
templates (``expr``), knob values and their layers (``knobs``), packs (``packs``),
rules that could conflict (``conflicts``, for ``check``), and trust: which files
may set what (``trust``; the build variables themselves in ``buildvars``, which
the warm replay imports too), and the ``allow`` records. Trust sits here, not with the team tools,
because the loader classifies every entry of a project file as it reads it.

May import the base modules (``errors``, ``paths``, ``filestate``, ``model``,
``sizes``, ``data``) only. Facts reach it as names and types passed in by the
engine, never by importing ``facts``. This ``__init__`` imports nothing.
"""

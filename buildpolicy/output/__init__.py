"""Stage 4, output: the decided environment printed for shells and file formats
(``render``), the ``explain`` report as text and as the JSON contract (``report``),
and notes and warnings on stderr (``notes``).

May import the base modules, ``policy``, ``facts`` and ``engine``; it reads a
``Result`` and never decides anything. This ``__init__`` imports nothing.
"""

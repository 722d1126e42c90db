"""The rule expression language (the ``when`` field) and ``${fact}`` interpolation.

Modules, in the order a ``when`` text goes through them: ``tokens`` (the tokenizer
and the positioned faults it and the parser raise), ``parser`` (grammar, with
``typecheck`` judging operand types), ``nodes`` (the compiled tree, its evaluation
and what ``check`` learns from it), ``ops`` (the comparison operators, shared with
the warm replay) and ``templates`` (``${fact}`` interpolation). This ``__init__``
imports nothing: the warm replay imports ``ops`` alone.

Grammar (lowest precedence first; DESIGN §4)::

    expr        := or_expr
    or_expr     := and_expr ('or' and_expr)*
    and_expr    := not_expr ('and' not_expr)*
    not_expr    := 'not' not_expr | comparison
    comparison  := operand [compare_op operand]        # comparisons never chain
    compare_op  := '==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'not' 'in'
    operand     := literal | fact | list | '(' expr ')'
    list        := '[' [literal (',' literal)* [',']] ']'
    literal     := INT | FLOAT | SIZE | STRING | 'true' | 'false' | 'null'
    fact        := IDENT ('.' IDENT)*                  # IDENT = [A-Za-z_][A-Za-z0-9_]*

``42`` and ``-1`` are ints, ``1.5`` is a number, ``512MiB``/``1.5GB``/``16G`` (a number
immediately followed by unit letters, case-insensitive) are sizes in bytes
(:func:`buildpolicy.sizes.parse_size`).  Strings are single- or double-quoted; ``\\'``,
``\\"`` and ``\\\\`` are escapes, any other backslash is kept literally (so Windows paths
such as ``'C:\\tools'`` read as written).  List literals hold literals only, of one kind.

Everything is checked when the policy is loaded (:func:`compile_expr`): syntax, unknown
fact names (with a "did you mean" suggestion) and types.  Types are those of the facts
model: ``string``, ``int``, ``size``, ``number``, ``bool``, ``list`` and ``any`` (compatible
with everything).  ``int``, ``size`` and ``number`` compare with each other; strings compare
with strings (``==`` and ordering); bools only with ``==``/``!=``; ``in`` takes a single value
on the left and a list (element kinds checked when known) or, for a substring test, a
string on the right.  ``and``, ``or``, ``not`` and the whole expression need conditions: a
comparison, a ``bool`` fact, ``true``/``false`` or an ``any`` fact.

Null semantics (a fact is ``null`` when it is unknown: the probe failed or is unsupported)
------------------------------------------------------------------------------------------
As DESIGN §3 says: a comparison involving null is false.

* Any comparison (``== != < <= > >= in``, ``not in``) with a null operand is false.  So
  ``x != 'a'`` is *false* when ``x`` is unknown, just like ``x == 'a'``: a comparison
  never holds about a fact nobody could measure.
* The one exception is comparing with the literal ``null``: ``x == null`` is true exactly
  when ``x`` is unknown and ``x != null`` exactly when it is known, so it is the way to
  write a rule about a fact being missing.
* A fact used alone as a condition that is null is false (a value that is not a bool,
  possible only for ``any`` facts, also counts as false).
* ``not``, ``and`` and ``or`` are plain two-valued logic over those results:
  ``not (x == 'a')`` is *true* when ``x`` is unknown, because the comparison is false.
  Write ``x != null and not (x == 'a')`` when an unknown ``x`` must not match.

``and``/``or`` evaluate left to right and stop once the result is decided (a false left
side of ``and``, a true left side of ``or``), so putting a cheap fact first spares probing
the later ones.  A comparison whose left operand is null does not look up its right one.

:meth:`Expr.evaluate` also returns the names of facts that were consulted and were null,
which ``explain`` shows as the reason a rule did not match.

Compiled expressions are small trees of plain node objects (picklable, no closures, no
regular expressions at evaluation time) because policies are cached with pickle and
evaluated at every shell prompt.
"""

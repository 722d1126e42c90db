"""The rule expression language (the ``when`` field) and ``${fact}`` interpolation.

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

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Iterable

from .errors import BuildpolicyError, Diagnostic, closest
from .exprops import OPS as _OPS, compare  # shared with the warm replay (buildpolicy.memo)
from .sizes import parse_size

__all__ = [
    "ExprError",
    "Expr",
    "compile_expr",
    "interpolation_facts",
    "interpolate",
    "FACT_TYPES",
]

#: The fact types ``fact_type`` may return.
FACT_TYPES = frozenset({"string", "int", "size", "number", "bool", "list", "any"})


class ExprError(BuildpolicyError):
    """A syntax, name or type error in an expression or template.

    ``diagnostic`` is a :class:`~buildpolicy.errors.Diagnostic` whose ``detail`` holds the
    offending line of the expression (indented by 4 spaces) and a caret line under the
    fault.  It is a :class:`BuildpolicyError` so that, uncaught, it is printed without a
    traceback with the usage exit code.
    """

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic)

    def __reduce__(self):
        # Exceptions with a custom __init__ do not pickle by default; results of
        # compilation (including failures) may cross process boundaries.
        return (type(self), (self.diagnostic,))


# --------------------------------------------------------------------------------------
# Positions and diagnostics
# --------------------------------------------------------------------------------------


def _diagnostic(text: str, offset: int, message: str, file, line, col) -> Diagnostic:
    """Build a Diagnostic for ``text[offset]``.

    ``line``/``col`` locate the first character of ``text`` in its file; without them the
    position is relative to the text itself (1, 1).  When the fault is on a later line of a
    multi-line text, that line starts at column 1 of the file line.
    """
    base_line = 1 if line is None else line
    base_col = 1 if col is None else col
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    if line_end < 0:
        line_end = len(text)
    line_index = text.count("\n", 0, offset)
    in_line = offset - line_start
    if line_index == 0:
        err_line, err_col = base_line, base_col + in_line
    else:
        err_line, err_col = base_line + line_index, 1 + in_line
    source_line = text[line_start:line_end]
    # Keep tabs in the caret's indentation so the caret lines up however tabs render.
    pad = "".join("\t" if ch == "\t" else " " for ch in source_line[:in_line])
    detail = ("    " + source_line, "    " + pad + "^")
    return Diagnostic(file, err_line, err_col, message, detail)


class _Fault(Exception):
    """Internal: a fault at an offset of the text being compiled (made into ExprError)."""

    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset = offset
        self.message = message


def _unknown_fact_message(name: str, known_facts: Iterable[str]) -> str:
    """``unknown fact 'x'`` plus a suggestion from the known names or the keywords."""
    message = f"unknown fact {name!r}"
    lowered = name.lower()
    if lowered in _KEYWORDS or name in ("True", "False", "None"):
        # `AND`, `True`, `None` are habits from other languages, not typos of facts.
        word = {"none": "null"}.get(lowered, lowered)
        return f"{message} (did you mean {word!r}?)"
    # One suggestion only: a list of near names reads as noise next to the caret.
    match = closest(name, known_facts)
    if match:
        message += f" (did you mean {match!r}?)"
    return message


# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------

_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
_COMPARE_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})

# One master pattern; strings are scanned by hand (escapes, unterminated detection).
# A number swallows any identifier characters right after it so that `16G`, `1.5GB` and
# the mistakes `16X`, `2and` are one token, judged by parse_size.  A name swallows dots
# and digits greedily and is validated afterwards so `memory.` or `a..b` get a clear
# message instead of "unexpected '.'".
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>-?\d+(?:\.\d+)?)(?P<unit>[A-Za-z_][A-Za-z0-9_]*)?
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
  | (?P<quote>['"])
    """,
    re.VERBOSE,
)
_SEGMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Characters people type out of habit from other languages.
_CHAR_HINTS = {
    "=": "unexpected '='; use '==' to compare",
    "!": "unexpected '!'; use 'not' (or '!=')",
    "&": "unexpected '&'; use 'and'",
    "|": "unexpected '|'; use 'or'",
}

_ESCAPES = {"'": "'", '"': '"', "\\": "\\"}


class _Tok:
    """A token: ``kind`` is num/size/str/name/kw/op/eof; ``pos``/``end`` are offsets."""

    __slots__ = ("kind", "value", "pos", "end")

    def __init__(self, kind, value, pos, end):
        self.kind = kind
        self.value = value
        self.pos = pos
        self.end = end

    def is_(self, kind, value=None) -> bool:
        return self.kind == kind and (value is None or self.value == value)


def _fact_name_fault(name: str, pos: int) -> _Fault | None:
    """Return a fault when a dotted name has an empty or digit-initial segment."""
    offset = pos
    for segment in name.split("."):
        if not _SEGMENT_RE.match(segment):
            return _Fault(offset, f"invalid fact name {name!r}: each dot-separated part must "
                                  "start with a letter or '_'")
        offset += len(segment) + 1
    return None


def _tokenize(text: str) -> list[_Tok]:
    """Split ``text`` into tokens, raising _Fault at the first bad character."""
    tokens: list[_Tok] = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            ch = text[pos]
            raise _Fault(pos, _CHAR_HINTS.get(ch, f"unexpected character {ch!r}"))
        kind = m.lastgroup
        if kind == "ws":
            pos = m.end()
            continue
        if kind in ("num", "unit"):
            number, unit = m.group("num"), m.group("unit")
            if unit:
                literal = number + unit
                try:
                    tokens.append(_Tok("size", parse_size(literal), pos, m.end()))
                except ValueError as exc:
                    raise _Fault(pos, f"invalid size literal: {exc}") from None
            elif "." in number:
                tokens.append(_Tok("num", float(number), pos, m.end()))
            else:
                tokens.append(_Tok("num", int(number), pos, m.end()))
        elif kind == "name":
            name = m.group("name")
            if name in _KEYWORDS:
                tokens.append(_Tok("kw", name, pos, m.end()))
            else:
                fault = _fact_name_fault(name, pos)
                if fault:
                    raise fault
                tokens.append(_Tok("name", name, pos, m.end()))
        elif kind == "op":
            tokens.append(_Tok("op", m.group("op"), pos, m.end()))
        else:  # quote
            tokens.append(_scan_string(text, pos))
            pos = tokens[-1].end
            continue
        pos = m.end()
    tokens.append(_Tok("eof", None, n, n))
    return tokens


def _scan_string(text: str, start: int) -> _Tok:
    """Scan the quoted string starting at ``text[start]`` (the quote)."""
    quote = text[start]
    out = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return _Tok("str", "".join(out), start, i + 1)
        if ch == "\\" and i + 1 < n and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        if ch == "\n":
            break  # a string never spans lines: point at its opening quote
        out.append(ch)
        i += 1
    raise _Fault(start, "unterminated string (missing the closing quote)")


# --------------------------------------------------------------------------------------
# Evaluation nodes
# --------------------------------------------------------------------------------------
#
# Every node has ``eval(lookup, trace)`` returning its value; condition nodes return
# True, False or None (null).  ``trace.unknown`` is a set collecting facts that were
# consulted and were null; ``trace.exact``/``trace.condition``, when set, learn how the
# result depends on each fact (see ``Expr.evaluate``).  Nodes are plain __slots__
# classes so they pickle (protocol >= 2).


class _Trace:
    __slots__ = ("unknown", "exact", "condition")

    def __init__(self, exact, condition):
        self.unknown: set[str] = set()
        self.exact = exact
        self.condition = condition


class _Node:
    __slots__ = ()

    def __getstate__(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state):
        for name, value in zip(self.__slots__, state):
            setattr(self, name, value)

    def __repr__(self):
        args = ", ".join(repr(getattr(self, name)) for name in self.__slots__)
        return f"{type(self).__name__}({args})"


class Literal(_Node):
    """A constant (lists are stored as tuples)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def eval(self, lookup, trace):
        return self.value


class Fact(_Node):
    """A fact reference; ``is_size`` converts string values such as ``'16GiB'``."""

    __slots__ = ("name", "is_size")

    def __init__(self, name: str, is_size: bool = False):
        self.name = name
        self.is_size = is_size

    def eval(self, lookup, trace):
        if trace.exact is not None:
            trace.exact(self.name)
        return self.read(lookup, trace)

    def read(self, lookup, trace):
        """The fact's value, without telling ``trace`` how it is used."""
        value = lookup(self.name)
        if value is None:
            trace.unknown.add(self.name)
        elif self.is_size and value.__class__ is str:
            # A --facts file may spell sizes as text; convert rather than fail to compare.
            try:
                value = parse_size(value)
            except ValueError:
                pass
        return value


class Not(_Node):
    """``not X``: X that is null (a comparison with an unknown fact) counts as false, so ``not X`` is true."""

    __slots__ = ("operand",)

    def __init__(self, operand):
        self.operand = operand

    def eval(self, lookup, trace):
        return self.operand.eval(lookup, trace) is not True


class And(_Node):
    """``and``, short-circuiting on a false left side (null counts as false)."""

    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right

    def eval(self, lookup, trace):
        return self.left.eval(lookup, trace) is True and self.right.eval(lookup, trace) is True


class Or(_Node):
    """``or``, short-circuiting on a true left side (null counts as false)."""

    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right

    def eval(self, lookup, trace):
        return self.left.eval(lookup, trace) is True or self.right.eval(lookup, trace) is True


class IsNull(_Node):
    """``X == null`` (``negate`` False) or ``X != null``: never null itself."""

    __slots__ = ("operand", "negate")

    def __init__(self, operand, negate: bool):
        self.operand = operand
        self.negate = negate

    def eval(self, lookup, trace):
        return (self.operand.eval(lookup, trace) is None) is not self.negate


class Compare(_Node):
    """A binary comparison; null if either operand is null."""

    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left, right):
        self.op = op
        self.left = left
        self.right = right

    def eval(self, lookup, trace):
        if trace.condition is not None and self.left.__class__ is Fact and self.right.__class__ is Literal:
            # `fact <op> constant`: the result depends on the fact only through this
            # comparison, so the trace learns the comparison, not the exact value.
            left = self.left.read(lookup, trace)
            result = compare(self.op, left, self.right.value)
            trace.condition(self.left.name, self.op, self.right.value, result)
            return result
        left = self.left.eval(lookup, trace)
        if left is None:
            return None  # decided: don't probe the right side
        right = self.right.eval(lookup, trace)
        if right is None:
            return None
        return _OPS[self.op](left, right)


# --------------------------------------------------------------------------------------
# Parser with type checking
# --------------------------------------------------------------------------------------

_NUMERIC = frozenset({"int", "size", "number"})
_ARTICLE = {"int": "an int", "any": "any value", "null": "null"}


def _kind(t: str) -> str:
    """The comparison class of a type: int/size/number all compare as numbers."""
    return "number" if t in _NUMERIC else t


def _a(t: str) -> str:
    return _ARTICLE.get(t, f"a {t}")


class _Typed:
    """A parsed sub-expression: node, type, element type (lists) and source span."""

    __slots__ = ("node", "type", "elem", "pos", "end")

    def __init__(self, node, type_, pos, end, elem="any"):
        self.node = node
        self.type = type_
        self.elem = elem
        self.pos = pos
        self.end = end


class _Parser:
    def __init__(self, text, tokens, fact_type, known_facts):
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.fact_type = fact_type
        self.known_facts = known_facts
        self.facts: set[str] = set()

    # -- helpers --------------------------------------------------------------------

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def peek(self, ahead=1) -> _Tok:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def src(self, typed: _Typed) -> str:
        """Source text of a sub-expression, shortened for messages."""
        snippet = " ".join(self.text[typed.pos:typed.end].split())
        return snippet if len(snippet) <= 40 else snippet[:37] + "..."

    def describe(self, typed: _Typed) -> str:
        return f"{self.src(typed)} ({_a(typed.type)})"

    def tok_text(self, tok: _Tok) -> str:
        return "end of expression" if tok.kind == "eof" else repr(self.text[tok.pos:tok.end])

    def at_compare_op(self) -> bool:
        tok = self.tok
        return ((tok.kind == "op" and tok.value in _COMPARE_OPS)
                or tok.is_("kw", "in")
                or (tok.is_("kw", "not") and self.peek().is_("kw", "in")))

    def require_condition(self, typed: _Typed, where: str) -> None:
        """Conditions must be bool (or any); anything else is a load-time type error."""
        if typed.type in ("bool", "any"):
            return
        hint = ""
        if isinstance(typed.node, Fact):
            example = {"string": "== '...'", "list": "!= []", "null": ""}.get(typed.type, "> 0")
            hint = f"; compare it, e.g. {typed.node.name} {example}"
        raise _Fault(typed.pos, f"{where} needs a condition, but {self.describe(typed)} is not "
                                f"a bool{hint}")

    # -- grammar --------------------------------------------------------------------

    def parse(self) -> _Typed:
        if self.tok.kind == "eof":
            raise _Fault(0, "empty expression")
        result = self.parse_or()
        tok = self.tok
        if tok.kind != "eof":
            if tok.is_("op", ")"):
                raise _Fault(tok.pos, "unmatched ')'")
            raise _Fault(tok.pos, f"unexpected {self.tok_text(tok)} after a complete "
                                  "expression; expected 'and', 'or' or the end")
        self.require_condition(result, "a 'when' expression")
        return result

    def parse_or(self) -> _Typed:
        left = self.parse_and()
        while self.tok.is_("kw", "or"):
            # Check the left side first so errors are reported left to right.
            self.require_condition(left, "'or'")
            self.advance()
            right = self.parse_and()
            self.require_condition(right, "'or'")
            left = _Typed(Or(left.node, right.node), "bool", left.pos, right.end)
        return left

    def parse_and(self) -> _Typed:
        left = self.parse_not()
        while self.tok.is_("kw", "and"):
            # Check the left side first so errors are reported left to right.
            self.require_condition(left, "'and'")
            self.advance()
            right = self.parse_not()
            self.require_condition(right, "'and'")
            left = _Typed(And(left.node, right.node), "bool", left.pos, right.end)
        return left

    def parse_not(self) -> _Typed:
        if self.tok.is_("kw", "not"):
            start = self.advance().pos
            operand = self.parse_not()
            self.require_condition(operand, "'not'")
            return _Typed(Not(operand.node), "bool", start, operand.end)
        return self.parse_comparison()

    def parse_comparison(self) -> _Typed:
        left = self.parse_operand()
        if not self.at_compare_op():
            return left
        op_tok = self.advance()
        op = op_tok.value
        if op == "not":
            self.advance()
            op = "not in"
        right = self.parse_operand()
        result = self.check_compare(op, op_tok, left, right)
        if self.at_compare_op():
            # Python would read `a < b < c` as `a < b and b < c`; other languages as
            # `(a < b) < c`.  Refuse rather than pick one silently.
            raise _Fault(self.tok.pos, "comparisons cannot be chained; combine them with "
                                       "'and'")
        return result

    def parse_operand(self) -> _Typed:
        tok = self.tok
        kind = tok.kind
        if kind == "num":
            self.advance()
            return _Typed(Literal(tok.value), "int" if type(tok.value) is int else "number",
                          tok.pos, tok.end)
        if kind == "size":
            self.advance()
            return _Typed(Literal(tok.value), "size", tok.pos, tok.end)
        if kind == "str":
            self.advance()
            return _Typed(Literal(tok.value), "string", tok.pos, tok.end)
        if kind == "kw" and tok.value in ("true", "false"):
            self.advance()
            return _Typed(Literal(tok.value == "true"), "bool", tok.pos, tok.end)
        if kind == "kw" and tok.value == "null":
            self.advance()
            return _Typed(Literal(None), "null", tok.pos, tok.end)
        if kind == "name":
            return self.parse_fact()
        if tok.is_("op", "["):
            return self.parse_list()
        if tok.is_("op", "("):
            self.advance()
            inner = self.parse_or()
            if not self.tok.is_("op", ")"):
                if self.tok.kind == "eof":
                    raise _Fault(tok.pos, "unclosed '('")
                raise _Fault(self.tok.pos, f"expected ')' but found {self.tok_text(self.tok)}")
            end = self.advance().end
            return _Typed(inner.node, inner.type, tok.pos, end, inner.elem)
        if kind == "eof":
            raise _Fault(tok.pos, "unexpected end of expression; expected a value or a fact")
        raise _Fault(tok.pos, f"unexpected {self.tok_text(tok)}; expected a value or a fact")

    def parse_fact(self) -> _Typed:
        tok = self.advance()
        name = tok.value
        type_ = self.fact_type(name)
        if type_ is None:
            raise _Fault(tok.pos, _unknown_fact_message(name, self.known_facts))
        if type_ not in FACT_TYPES:
            type_ = "any"  # a plugin's own type name: be permissive, check nothing
        self.facts.add(name)
        return _Typed(Fact(name, type_ == "size"), type_, tok.pos, tok.end)

    def parse_list(self) -> _Typed:
        start = self.advance().pos
        items: list = []
        elem = "any"
        first_item: _Typed | None = None
        while not self.tok.is_("op", "]"):
            if self.tok.kind == "eof":
                raise _Fault(start, "unclosed '['")
            item_tok = self.tok
            if item_tok.kind == "name" or item_tok.is_("op", "(") or item_tok.is_("op", "["):
                raise _Fault(item_tok.pos, "list elements must be literal values")
            item = self.parse_operand()
            if item.type == "null":
                raise _Fault(item.pos, "null cannot be a list element")
            if first_item is None:
                first_item, elem = item, item.type
            elif _kind(item.type) != _kind(elem):
                raise _Fault(item.pos, f"list mixes {_a(elem)} ({self.src(first_item)}) and "
                                       f"{self.describe(item)}")
            elif item.type != elem:
                elem = "number"  # e.g. [1, 1.5] or [1, 1GiB]: still numbers
            items.append(item.node.value)
            if self.tok.is_("op", ","):
                self.advance()
            elif not self.tok.is_("op", "]"):
                if self.tok.kind == "eof":
                    raise _Fault(start, "unclosed '['")
                raise _Fault(self.tok.pos, f"expected ',' or ']' but found "
                                           f"{self.tok_text(self.tok)}")
        end = self.advance().end
        return _Typed(Literal(tuple(items)), "list", start, end, elem)

    # -- type checking of comparisons -------------------------------------------------

    def check_compare(self, op: str, op_tok: _Tok, left: _Typed, right: _Typed) -> _Typed:
        """Type-check ``left op right`` and build its node."""
        span = (left.pos, right.end)
        lt, rt = left.type, right.type
        mismatch = (f"type mismatch: cannot compare {self.describe(left)} with "
                    f"{self.describe(right)} using '{op}'")

        if op in ("==", "!="):
            if lt == "null" or rt == "null":
                # The documented exception: an explicit test for an unknown fact.
                if lt == "null" and rt == "null":
                    return _Typed(Literal(op == "=="), "bool", *span)
                operand = right if lt == "null" else left
                return _Typed(IsNull(operand.node, op == "!="), "bool", *span)
            if lt != "any" and rt != "any" and _kind(lt) != _kind(rt):
                raise _Fault(op_tok.pos, mismatch)
            return _Typed(Compare(op, left.node, right.node), "bool", *span)

        for side in (left, right):
            if side.type == "null":
                raise _Fault(side.pos, f"'{op}' with null is always false; test a fact with "
                                       "'== null' or '!= null'")

        if op in ("in", "not in"):
            if rt == "list":
                if lt == "list":
                    raise _Fault(left.pos, f"the left side of '{op}' must be a single value, "
                                           f"but {self.describe(left)} is a list")
                if lt != "any" and right.elem != "any" and _kind(lt) != _kind(right.elem):
                    raise _Fault(op_tok.pos, f"type mismatch: {self.describe(left)} can never "
                                             f"be in {self.src(right)} (a list of "
                                             f"{_kind(right.elem)}s)")
            elif rt == "string":
                if lt not in ("string", "any"):
                    raise _Fault(op_tok.pos, f"type mismatch: '{op}' with a string on the right "
                                             f"tests for a substring, but "
                                             f"{self.describe(left)} is not a string")
            elif rt != "any":
                raise _Fault(right.pos, f"the right side of '{op}' must be a list or a string, "
                                        f"but {self.describe(right)} is not")
            return _Typed(Compare(op, left.node, right.node), "bool", *span)

        # Ordering: numbers with numbers, strings with strings.
        for side in (left, right):
            if side.type in ("bool", "list"):
                raise _Fault(side.pos, f"'{op}' cannot order {self.describe(side)}; only "
                                       "numbers, sizes and strings have an order")
        if lt != "any" and rt != "any" and _kind(lt) != _kind(rt):
            raise _Fault(op_tok.pos, mismatch)
        return _Typed(Compare(op, left.node, right.node), "bool", *span)


# --------------------------------------------------------------------------------------
# Public API: expressions
# --------------------------------------------------------------------------------------


class Expr:
    """A compiled, type-checked ``when`` expression.

    ``text`` is the source, ``facts_used`` every fact name it references.  Instances are
    immutable in practice and picklable.
    """

    __slots__ = ("text", "facts_used", "_root")

    def __init__(self, text: str, facts_used: frozenset, root: _Node):
        self.text = text
        self.facts_used = facts_used
        self._root = root

    def __getstate__(self):
        return (self.text, self.facts_used, self._root)

    def __setstate__(self, state):
        self.text, self.facts_used, self._root = state

    def evaluate(self, lookup: Callable[[str], Any], *, exact: Callable[[str], None] | None = None,
                 condition: Callable[[str, str, Any, Any], None] | None = None) -> tuple[bool, frozenset[str]]:
        """Evaluate against ``lookup(name) -> value or None``.

        Returns ``(matched, unknown)``: ``matched`` is True only when the expression is
        definitely true (null counts as false, see the module docstring); ``unknown`` are
        the facts that were consulted and were null.  Facts after a decided ``and``/``or``
        are not looked up.

        With ``condition`` (and ``exact``) given, the evaluation reports what its result
        depends on: ``condition(fact, op, constant, outcome)`` for each ``fact <op>
        constant`` comparison evaluated, ``exact(fact)`` for a fact used any other way.
        While every reported comparison keeps its outcome and every exact fact its value,
        the result cannot change (the warm ``env`` replay relies on this).
        """
        trace = _Trace(exact, condition)
        result = self._root.eval(lookup, trace)
        return result is True, frozenset(trace.unknown)

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def __eq__(self, other):
        if not isinstance(other, Expr):
            return NotImplemented
        return self.text == other.text and repr(self._root) == repr(other._root)

    def __hash__(self):
        return hash(self.text)


def compile_expr(text: str, *, fact_type: Callable[[str], str | None], file=None,
                 line: int | None = None, col: int | None = None,
                 known_facts: Iterable[str] = ()) -> Expr:
    """Parse and type-check a ``when`` expression.

    ``fact_type(name)`` returns the fact's type (one of :data:`FACT_TYPES`) or None for an
    unknown name; ``known_facts`` feeds the "did you mean" suggestion.  ``line``/``col``
    (1-based) locate the first character of ``text`` in ``file``; errors are reported at
    that position plus the fault's offset (multi-line texts handled).

    Raises :class:`ExprError` for syntax errors, unknown facts and type mismatches.
    """
    try:
        parser = _Parser(text, _tokenize(text), fact_type, known_facts)
        root = parser.parse()
    except _Fault as fault:
        raise ExprError(_diagnostic(text, fault.offset, fault.message, file, line, col)) from None
    return Expr(text, frozenset(parser.facts), root.node)


# --------------------------------------------------------------------------------------
# Public API: ${fact} interpolation
# --------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


@functools.lru_cache(maxsize=1024)
def _template_parts(template: str) -> tuple:
    """Split a template into ``(is_fact, text_or_name, offset)`` parts.

    Cached: the same few env templates are interpolated at every prompt.  Raises _Fault.
    """
    parts = []
    literal: list[str] = []
    i = 0
    n = len(template)
    while True:
        j = template.find("$", i)
        if j < 0:
            literal.append(template[i:])
            break
        literal.append(template[i:j])
        nxt = template[j + 1:j + 2]
        if nxt == "$":
            literal.append("$")
            i = j + 2
        elif nxt == "{":
            close = template.find("}", j + 2)
            if close < 0:
                raise _Fault(j, "unterminated '${' (missing '}')")
            name = template[j + 2:close]
            if not name:
                raise _Fault(j, "empty '${}': put a fact name inside")
            if not _NAME_RE.match(name):
                raise _Fault(j + 2, f"invalid fact name {name!r} in '${{...}}'")
            if literal:
                parts.append((False, "".join(literal), 0))
                literal = []
            parts.append((True, name, j + 2))
            i = close + 1
        else:
            raise _Fault(j, "'$' must start '${fact}'; write '$$' for a literal '$'")
        if i >= n:
            break
    text = "".join(literal)
    if text:
        parts.append((False, text, 0))
    return tuple(parts)


def interpolation_facts(template: str, *, fact_type: Callable[[str], str | None], file=None,
                        line: int | None = None, col: int | None = None,
                        known_facts: Iterable[str] = ()) -> tuple[str, ...]:
    """Validate a ``${fact}`` template at load time and return the facts it references.

    ``${name}`` references a fact, ``$$`` is a literal ``$``.  A lone ``$``, an unterminated
    ``${``, an invalid or unknown name raise :class:`ExprError` located like
    :func:`compile_expr` errors.  Names are returned once each, in order of appearance.
    """
    try:
        parts = _template_parts(template)
        names: list[str] = []
        for is_fact, name, offset in parts:
            if not is_fact:
                continue
            if fact_type(name) is None:
                raise _Fault(offset, _unknown_fact_message(name, known_facts))
            if name not in names:
                names.append(name)
    except _Fault as fault:
        raise ExprError(_diagnostic(template, fault.offset, fault.message, file, line, col)) from None
    return tuple(names)


def _format_value(value) -> str:
    """Render a fact value for an env name or value."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(_format_value(item) for item in value)
    return str(value)


def interpolate(template: str, lookup: Callable[[str], Any]) -> tuple[str, frozenset[str]]:
    """Substitute ``${fact}`` references in ``template`` using ``lookup``.

    Strings are used as they are, bools as ``true``/``false``, numbers in decimal, lists
    joined by ``,``.  An unknown (None) fact becomes the empty string and is reported in
    the returned set.  Templates should have been checked with
    :func:`interpolation_facts`; an invalid one raises :class:`ExprError`.
    """
    try:
        parts = _template_parts(template)
    except _Fault as fault:
        raise ExprError(_diagnostic(template, fault.offset, fault.message, None, None, None)) from None
    out: list[str] = []
    unknown: set[str] = set()
    for is_fact, text, _offset in parts:
        if is_fact:
            value = lookup(text)
            if value is None:
                unknown.add(text)
            out.append(_format_value(value))
        else:
            out.append(text)
    return "".join(out), frozenset(unknown)


def _conjuncts(node: _Node):
    if isinstance(node, And):
        yield from _conjuncts(node.left)
        yield from _conjuncts(node.right)
    else:
        yield node


def required_values(expr: Expr | None) -> dict[str, Any]:
    """Facts the expression pins to one value in its top-level ``and`` chain.

    ``os == 'linux' and process.earlyoom and not ci`` gives
    ``{"os": "linux", "process.earlyoom": True, "ci": False}``. ``check`` uses
    it to tell whether two rules can ever match together.
    """
    pinned: dict[str, Any] = {}
    if expr is None:
        return pinned
    for node in _conjuncts(expr._root):
        if isinstance(node, Fact):
            pinned[node.name] = True
        elif isinstance(node, Not) and isinstance(node.operand, Fact):
            pinned[node.operand.name] = False
        elif isinstance(node, Compare) and node.op == "==":
            if isinstance(node.left, Fact) and isinstance(node.right, Literal):
                pinned[node.left.name] = node.right.value
            elif isinstance(node.right, Fact) and isinstance(node.left, Literal):
                pinned[node.right.name] = node.left.value
    return pinned


def may_both_match(first: Expr | None, second: Expr | None) -> bool:
    """False when the two expressions pin one fact to different values, else True."""
    a, b = required_values(first), required_values(second)
    return all(a[name] == b[name] for name in a.keys() & b.keys())

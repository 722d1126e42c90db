"""Tokens of an expression, and the faults found in it, with their positions.

A fault (``Fault``) is raised at an offset of the text being compiled; the
public functions turn it into an ``ExprError`` carrying a ``file:line:col``
diagnostic with the offending line and a caret under the fault.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from buildpolicy.errors import BuildpolicyError, Diagnostic, closest
from buildpolicy.sizes import parse_size


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


_CONTEXT = 60  # characters shown on each side of a fault in a very long line


def diagnostic(text: str, offset: int, message: str, file, line, col) -> Diagnostic:
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
    caret_at = in_line
    if len(source_line) > 2 * _CONTEXT:
        # A 100,000-term line is shown around the fault, not whole.
        first = max(0, in_line - _CONTEXT)
        last = min(len(source_line), in_line + _CONTEXT)
        head, tail = ("…" if first else ""), ("…" if last < len(source_line) else "")
        source_line = head + source_line[first:last] + tail
        caret_at = len(head) + in_line - first
    # Keep tabs in the caret's indentation so the caret lines up however tabs render.
    pad = "".join("\t" if ch == "\t" else " " for ch in source_line[:caret_at])
    detail = ("    " + source_line, "    " + pad + "^")
    return Diagnostic(file, err_line, err_col, message, detail)


class Fault(Exception):
    """Internal: a fault at an offset of the text being compiled (made into ExprError)."""

    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset = offset
        self.message = message


def unknown_fact_message(name: str, known_facts: Iterable[str]) -> str:
    """``unknown fact 'x'`` plus a suggestion from the known names or the keywords."""
    message = f"unknown fact {name!r}"
    lowered = name.lower()
    if lowered in KEYWORDS or name in ("True", "False", "None"):
        # `AND`, `True`, `None` are habits from other languages, not typos of facts.
        word = {"none": "null"}.get(lowered, lowered)
        return f"{message} (did you mean {word!r}?)"
    # One suggestion only: a list of near names reads as noise next to the caret.
    match = closest(name, known_facts)
    if match:
        message += f" (did you mean {match!r}?)"
    return message


KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
MAX_NUMBER_DIGITS = 100  # a float has ~17 significant digits and a byte count 20: 100 is no limit in practice
COMPARE_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})

# One master pattern; strings are scanned by hand (escapes, unterminated detection).
# A number swallows any identifier characters right after it so that `16G`, `1.5GB` and
# the mistakes `16X`, `2and` are one token, judged by parse_size.  A name swallows dots
# and digits greedily and is validated afterwards so `memory.` or `a..b` get a clear
# message instead of "unexpected '.'". Compiled on first use: a full run whose policies
# come from the compiled cache parses no expression.
_TOKEN_PATTERN = (
    r"""
    (?P<ws>\s+)
  | (?P<num>-?\d+(?:\.\d+)?)(?P<unit>[A-Za-z_][A-Za-z0-9_]*)?
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
  | (?P<quote>['"])
    """
)


@functools.cache
def _token_re():
    return re.compile(_TOKEN_PATTERN, re.VERBOSE)
_SEGMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Characters people type out of habit from other languages.
_CHAR_HINTS = {
    "=": "unexpected '='; use '==' to compare",
    "!": "unexpected '!'; use 'not' (or '!=')",
    "&": "unexpected '&'; use 'and'",
    "|": "unexpected '|'; use 'or'",
}

_ESCAPES = {"'": "'", '"': '"', "\\": "\\"}


class Tok:
    """A token: ``kind`` is num/size/str/name/kw/op/eof (or ``long``, see ``tokenize``); ``pos``/``end`` are offsets."""

    __slots__ = ("kind", "value", "pos", "end")

    def __init__(self, kind, value, pos, end):
        self.kind = kind
        self.value = value
        self.pos = pos
        self.end = end

    def is_(self, kind, value=None) -> bool:
        return self.kind == kind and (value is None or self.value == value)


def _fact_name_fault(name: str, pos: int) -> Fault | None:
    """Return a fault when a dotted name has an empty or digit-initial segment."""
    offset = pos
    for segment in name.split("."):
        if not _SEGMENT_RE.match(segment):
            return Fault(offset, f"invalid fact name {name!r}: each dot-separated part must "
                                  "start with a letter or '_'")
        offset += len(segment) + 1
    return None


def tokenize(text: str, max_tokens: int | None = None) -> list[Tok]:
    """Split ``text`` into tokens, raising Fault at the first bad character.

    With ``max_tokens``, stops after that many and ends the list with a ``long``
    token where it stopped (the parser reports it if it gets that far), so a
    megabyte of expression costs no more than its first tokens.
    """
    tokens: list[Tok] = []
    token_re = _token_re()
    pos = 0
    n = len(text)
    while pos < n:
        m = token_re.match(text, pos)
        if m is None:
            ch = text[pos]
            raise Fault(pos, _CHAR_HINTS.get(ch, f"unexpected character {ch!r}"))
        kind = m.lastgroup
        if kind == "ws":
            pos = m.end()
            continue
        if max_tokens is not None and len(tokens) >= max_tokens:
            tokens.append(Tok("long", None, pos, pos))  # at the first token past the limit
            return tokens
        if kind in ("num", "unit"):
            number, unit = m.group("num"), m.group("unit")
            if unit:
                literal = number + unit
                try:
                    tokens.append(Tok("size", parse_size(literal), pos, m.end()))
                except ValueError as exc:
                    raise Fault(pos, f"invalid size literal: {exc}") from None
            elif len(number) > MAX_NUMBER_DIGITS:
                # int() refuses 4,300 digits with a ValueError; float() makes them inf.
                raise Fault(pos, f"number too long: more than {MAX_NUMBER_DIGITS} digits")
            elif "." in number:
                tokens.append(Tok("num", float(number), pos, m.end()))
            else:
                tokens.append(Tok("num", int(number), pos, m.end()))
        elif kind == "name":
            name = m.group("name")
            if name in KEYWORDS:
                tokens.append(Tok("kw", name, pos, m.end()))
            else:
                fault = _fact_name_fault(name, pos)
                if fault:
                    raise fault
                tokens.append(Tok("name", name, pos, m.end()))
        elif kind == "op":
            tokens.append(Tok("op", m.group("op"), pos, m.end()))
        else:  # quote
            tokens.append(_scan_string(text, pos))
            pos = tokens[-1].end
            continue
        pos = m.end()
    tokens.append(Tok("eof", None, n, n))
    return tokens


def _scan_string(text: str, start: int) -> Tok:
    """Scan the quoted string starting at ``text[start]`` (the quote)."""
    quote = text[start]
    out = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return Tok("str", "".join(out), start, i + 1)
        if ch == "\\" and i + 1 < n and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        if ch == "\n":
            break  # a string never spans lines: point at its opening quote
        out.append(ch)
        i += 1
    raise Fault(start, "unterminated string (missing the closing quote)")

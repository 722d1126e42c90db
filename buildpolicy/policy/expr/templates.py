"""``${fact}`` interpolation in env names and values: checked at load time, applied per run."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.policy.expr.tokens import ExprError, Fault, diagnostic, unknown_fact_message


_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_NAME_RE = re.compile(_NAME + r"\Z")
# A template with nothing wrong in it, in one match (possessive: a long text ending in a
# lone `$` fails at once instead of retrying every split of the text before it)...
_WELL_FORMED = re.compile(rf"(?:[^$]++|\$\$|\$\{{{_NAME}\}})*+\Z")
# ...and its `$$` and `${name}` parts (the name is empty for `$$`). The hot paths below
# use these; anything else, and every error, goes the long way (``_parsed_template``).
_REFERENCES = re.compile(rf"\$\$|\$\{{({_NAME})\}}")


def _template_parts(template: str) -> tuple:
    """Split a template into ``(is_fact, text_or_name, offset)`` parts.  Raises Fault.

    Most values have no ``$`` at all: they are one literal part, without a trip
    through the cache (a large policy set has tens of thousands of distinct ones).
    """
    if "$" not in template:
        return ((False, template, 0),) if template else ()
    return _parsed_template(template)


@functools.lru_cache(maxsize=1024)
def _parsed_template(template: str) -> tuple:
    """``_template_parts`` of a template with a ``$``; cached: the same few env templates
    are interpolated at every prompt."""
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
                raise Fault(j, "unterminated '${' (missing '}')")
            name = template[j + 2:close]
            if not name:
                raise Fault(j, "empty '${}': put a fact name inside")
            if not _NAME_RE.match(name):
                raise Fault(j + 2, f"invalid fact name {name!r} in '${{...}}'")
            if literal:
                parts.append((False, "".join(literal), 0))
                literal = []
            parts.append((True, name, j + 2))
            i = close + 1
        else:
            raise Fault(j, "'$' must start '${fact}'; write '$$' for a literal '$'")
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
    if _WELL_FORMED.match(template) is not None:
        names: list[str] = []
        for name in _REFERENCES.findall(template):
            if name and name not in names:
                if fact_type(name) is None:
                    break  # an unknown fact: the long way says where
                names.append(name)
        else:
            return tuple(names)
    try:
        parts = _template_parts(template)
        names = []
        for is_fact, name, offset in parts:
            if not is_fact:
                continue
            if fact_type(name) is None:
                raise Fault(offset, unknown_fact_message(name, known_facts))
            if name not in names:
                names.append(name)
    except Fault as fault:
        raise ExprError(diagnostic(template, fault.offset, fault.message, file, line, col)) from None
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
    if "$" not in template:
        return template, frozenset()
    if _WELL_FORMED.match(template) is not None:
        missing: set[str] = set()

        def value_of(reference: re.Match) -> str:
            name = reference.group(1)
            if name is None:
                return "$"
            value = lookup(name)
            if value is None:
                missing.add(name)
            return _format_value(value)

        return _REFERENCES.sub(value_of, template), frozenset(missing)
    try:
        parts = _template_parts(template)
    except Fault as fault:
        raise ExprError(diagnostic(template, fault.offset, fault.message, None, None, None)) from None
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

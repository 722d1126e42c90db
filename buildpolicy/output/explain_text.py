"""``explain`` as text for people: the first screen answers "what does my shell get, and why".

Order: the profile; the exported variables, each with a one-line reason; one line
per decision; the knobs that are not at their defaults; the matched rules;
unknown facts, warnings, the files read. ``verbose`` adds the full reasons and
details of decisions, the rules that did not match and the warm-replay section;
``show_all`` lists every knob. With a ``name`` only what has that name is shown,
in full. Lines fit ``width`` columns (None: whole lines, for pipes); paths are
shortened (``PathShortener``); ``style`` colours when enabled. The JSON contract
is ``report.explain_json``, unaffected by any of this.
"""

from __future__ import annotations

from buildpolicy.facts.display import format_fact
from buildpolicy.output.report import replay_lines
from buildpolicy.output.style import PathShortener, Style, clip, wrap

_QUIET_STATUSES = ("disabled", "skipped", "not-", "auto-not-needed", "system-default", "default", "inherited")
_WARNING_STATUSES = ("fallback", "error", "unavailable", "memory-unknown")


class _Writer:
    """The sections of one report, and how its text is laid out."""

    def __init__(self, result, width: int | None, style: Style, short: PathShortener, full: bool = False):
        self.full = full  # texts beside keys wrap in full instead of being cut to one line
        self.result = result
        self.width = width
        self.style = style
        self.short = short
        self.sections: list[list[str]] = []

    def section(self, title: str, lines: list[str]) -> None:
        self.sections.append([self.style(title, "bold"), *lines])

    def where(self, provenance) -> str:
        """``Provenance.describe`` with the file path shortened."""
        file = self.short(provenance.file)
        where = f" {file}" + (f":{provenance.line}" if provenance.line else "") if file else ""
        if provenance.source.startswith(provenance.layer):
            return f"{provenance.source}{where}"
        return f"{provenance.layer}{where} {provenance.source}".strip()

    def columns(self, rows: list[tuple[str, str]], *, key_style=(), indent: str = "  ", cap: int = 48) -> list[str]:
        """Two columns, a key and one line of text cut to the width; a key wider than ``cap``
        gets its text on the next line."""
        if not rows:
            return []
        if self.width is not None:
            cap = min(cap, max(self.width // 2 - len(indent), 8))
        key_width = min(max(len(key) for key, _ in rows), cap)
        lines = []
        beside = indent + " " * (key_width + 2)
        for key, text in rows:
            shown = self.style(clip(key, None if self.width is None else self.width - len(indent)), *key_style)
            if self.full and text:
                wrapped = wrap(text, self.width, beside)
                if len(key) > key_width:
                    lines.append(indent + shown)
                else:  # the key takes the first line's indent
                    wrapped[0] = indent + shown + " " * (key_width + 2 - len(key)) + wrapped[0][len(beside):]
                lines += wrapped
            elif len(key) > key_width:
                lines.append(indent + shown)
                lines.append(self._fit(beside, text))
            else:
                lines.append(indent + shown + " " * (key_width - len(key) + 2) + self._cut(indent, key_width, text))
        return [line.rstrip() for line in lines]

    def _cut(self, indent: str, key_width: int, text: str) -> str:
        room = None if self.width is None else self.width - len(indent) - key_width - 2
        return clip(text, room) if room is None or room >= 8 else ""

    def _fit(self, prefix: str, text: str) -> str:
        return prefix + clip(text, None if self.width is None else max(self.width - len(prefix), 8))

    def paragraph(self, text: str, indent: str, first: str | None = None) -> list[str]:
        return wrap(text, self.width, indent, first)

    def text(self) -> str:
        return "\n\n".join("\n".join(lines) for lines in self.sections) + "\n"


def explain_text(result, name: str | None = None, *, verbose: bool = False, show_all: bool = False,
                 width: int | None = None, style: Style | None = None, short: PathShortener | None = None) -> str:
    """The report (see the module docstring); "" when ``name`` names nothing."""
    full = verbose or name is not None
    out = _Writer(result, width, style or Style(False), short or PathShortener(None, None, None), full)
    argv = " ".join(result.cargo_args)
    header = f"buildpolicy: profile {result.profile}" + (f" · {argv}" if argv else "")
    out.sections.append([out.style(clip(header, width), "bold")])
    found = [
        _environment(out, name),
        _decisions(out, name, full),
        _knobs(out, name, show_all or name is not None),
        _rules(out, name, full),
        _facts(out, name),
    ]
    if name is not None:
        return out.text() if any(found) else ""
    if result.warnings:
        out.section("Warnings", [line for warning in result.warnings
                                 for line in out.paragraph(out.short.in_text(warning), "    ",
                                                           "  " + out.style("warning:", "yellow") + " ")])
    files = [(layer, out.short(path)) for layer, path in result.policy_set.files]
    out.section("Files read", out.columns(files) or ["  (none)"])
    if verbose:
        out.section("Warm replay", _replay(out))
    else:
        out.sections.append([out.style(line, "dim") for line in
                             out.paragraph("(-v: full reasons, every rule, the warm replay; --all: every knob)", " ", "")])
    return out.text()


def _replay(out: _Writer) -> list[str]:
    """``report.replay_lines`` refitted: its two-space lines are one paragraph, its
    four-space lines table rows."""
    lines, text = [], []
    for line in [*replay_lines(out.result), ""]:
        if line.startswith("  ") and not line.startswith("    "):
            text.append(line.strip())
            continue
        if text:
            lines += out.paragraph(" ".join(text), "  ")
            text = []
        if line:
            lines += out.paragraph(line.strip(), "        ", "    ")
    return lines


def _short_value(value: str, width: int = 60) -> str:
    text = repr(value) if any(c in value for c in "\n\t'\"") else value
    return clip(text, width)


def _variable_reason(out: _Writer, var: str) -> str:
    """One line on why ``var`` has its value: the decision that set it, the rule, or the composition."""
    result = out.result
    for decision in result.decisions.values():
        if any(name == var for name, _value in decision.set_env) or var in decision.unset:
            return f"{decision.name}: {decision.reason}"
    provenance = result.provenance[var]
    if provenance.source.startswith("rule "):
        rule_id = provenance.source[len("rule "):]
        rule = next((o.rule for o in result.rules if o.rule.id == rule_id), None)
        description = getattr(rule, "description", "") if rule is not None else ""
        return out.where(provenance) + (f": {description}" if description else "")
    if provenance.layer == "engine":
        return provenance.source
    return out.where(provenance)


def _environment(out: _Writer, name: str | None) -> bool:
    result = out.result
    rows: list[tuple[str, str]] = []
    wanted = [var for var in result.set_env if name is None or name == var]
    for var in wanted:
        rows.append((f"{var}={_short_value(result.set_env[var])}", _variable_reason(out, var)))
        rows += _overridden_rows(out, var)
    for var in result.unset:
        if name is None or name == var:
            rows.append((f"unset {var}", _variable_reason(out, var)))
    for var in result.overridden:
        if var in result.set_env or var in result.unset or (name is not None and name != var):
            continue
        rows.append((var, "kept from the caller (inherited)"))
        rows += _overridden_rows(out, var)
    if rows or name is None:
        out.section("Environment", out.columns(rows, key_style=("cyan",)) or ["  (nothing to set or unset)"])
    return bool(rows)


def _overridden_rows(out: _Writer, var: str) -> list[tuple[str, str]]:
    return [(f"  not {'unset' if value is None else _short_value(value)}", f"{out.where(where)} ({why})")
            for value, where, why in out.result.overridden.get(var, ())]


def _status_style(status: str) -> tuple[str, ...]:
    if status.startswith(_WARNING_STATUSES):
        return ("yellow",)
    if status.startswith(_QUIET_STATUSES):
        return ("dim",)
    return ("green",)


def _decisions(out: _Writer, name: str | None, full: bool) -> bool:
    decisions = {key: d for key, d in out.result.decisions.items() if name is None or name == key}
    if not decisions:
        return False
    name_width = max(len(key) for key in decisions)
    status_width = min(max(len(d.status) for d in decisions.values()), 32)
    lines = []
    for key, decision in decisions.items():
        source = decision.source if decision.source.startswith("rule ") else f"plugin {decision.source}"
        head = f"  {key.ljust(name_width)}  "
        if full:
            look = _status_style(decision.status)
            lines += [out.style(head, "bold") + out.style(line[len(head):], *look) if index == 0
                      else out.style(line, *look)
                      for index, line in enumerate(out.paragraph(decision.status, " " * (len(head) + 2), head))]
            lines += out.paragraph(f"{decision.reason} [{source}]", " " * (len(head) + 2))
            lines += [line for detail in decision.details
                      for line in out.paragraph(detail, " " * (len(head) + 6), " " * (len(head) + 4))]
            continue
        shown = decision.status if out.width is None else clip(decision.status, max(out.width - len(head), 8))
        status = out.style(shown, *_status_style(decision.status))
        padded = status + " " * max(status_width - len(shown), 0)
        used = len(head) + max(status_width, len(shown)) + 2
        room = None if out.width is None else out.width - used
        reason = "" if room is not None and room < 12 else clip(decision.reason, room)
        lines.append((out.style(head, "bold") + padded + "  " + reason).rstrip())
    out.section("Decisions", lines)
    return True


def _knobs(out: _Writer, name: str | None, every: bool) -> bool:
    result = out.result
    rows, at_default, ignored = [], 0, []  # ignored: bad values passed over, a line each
    for key, kv in sorted(result.knobs.items()):
        if name is not None and name != key:
            continue
        if kv.provenance.layer == "default" and not every and not kv.rejected:
            at_default += 1
            continue
        spec = result.knob_specs.get(key)
        value = "unset" if kv.value is None else format_fact(kv.value)
        env_names = ", ".join(spec.env_names) if spec else ""
        source = "default" if kv.provenance.layer == "default" else out.where(kv.provenance)
        rows.append((f"{key} = {value}", source + (f" [{env_names}]" if env_names else "")))
        ignored.extend(f"  {key}: ignored {message}" for message in kv.rejected)
    if not rows and name is not None:
        return False
    title = "Knobs" if every else "Knobs (not at their defaults)"
    lines = out.columns(rows) + ignored
    if at_default:
        more = f"{at_default} more" if rows else f"all {at_default}"
        lines.append(out.style(f"  {more} at their defaults (--all lists them)", "dim"))
    out.section(title, lines)
    return bool(rows)


def _rules(out: _Writer, name: str | None, full: bool) -> bool:
    result = out.result
    rows, unmatched = [], 0
    for outcome in result.rules:
        rule = outcome.rule
        if name is not None and name != rule.id:
            continue
        if not outcome.matched and not full:
            unmatched += 1
            continue
        mark = out.style("matched", "green") if outcome.matched else out.style("no", "dim")
        rows.append((mark, rule.id, f"{rule.layer} {out.short(rule.file)}:{rule.line}", outcome.note))
    for lower, higher in result.policy_set.replaced:
        if (name is None and full) or name == lower.id:
            rows.append((out.style("replaced", "dim"), lower.id, f"{lower.layer} {out.short(lower.file)}:{lower.line}",
                         f"by {higher.layer} {out.short(higher.file)}:{higher.line}"))
    if not rows and not unmatched:
        return False
    lines = _rule_lines(out, rows)
    if unmatched:
        lines.append(out.style(f"  {unmatched} more did not match (-v lists them)", "dim"))
    out.section("Rules", lines)
    return bool(rows)


def _rule_lines(out: _Writer, rows: list[tuple[str, str, str, str]]) -> list[str]:
    """Mark, id and where aligned; the note (why it matched or not) wrapped below them when
    it does not fit beside."""
    from buildpolicy.output.style import visible_len

    if not rows:
        return []
    widths = [max(visible_len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        head = "  " + "  ".join(cell + " " * (width - visible_len(cell)) for cell, width in zip(row[:3], widths))
        note = row[3]
        if out.width is not None and visible_len(head.rstrip()) > out.width:  # where goes below
            head = "  " + "  ".join(cell + " " * (width - visible_len(cell)) for cell, width in zip(row[:2], widths))
            note = f"{row[2]}: {note}" if note else row[2]
        if not note:
            lines.append(head.rstrip())
        elif out.width is None or visible_len(head) + 2 + len(note) <= out.width:
            lines.append(f"{head}  {note}")
        else:
            lines.append(head.rstrip())
            lines += out.paragraph(note, "      ")
    return lines


def _facts(out: _Writer, name: str | None) -> bool:
    from buildpolicy.facts import fact_type

    result = out.result
    if name is not None:
        if fact_type(name) is None or name in result.decisions:
            return False
        value = result.facts.get(name)
        rows = [(name, f"{format_fact(value, fact_type(name))}  {result.facts.unknown_reason(name) or ''}".rstrip())]
        out.section("Facts", out.columns(rows))
        return True
    unknown = result.unknown_facts()
    if unknown:
        out.section("Unknown facts (comparisons with them are false)",
                    out.columns(sorted(unknown.items()), key_style=("yellow",)))
    return False

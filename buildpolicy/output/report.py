"""``explain`` output: the JSON contract of DESIGN §7 and aligned text for people."""

from __future__ import annotations

from typing import Any

from buildpolicy.facts.display import format_fact
from buildpolicy.sizes import format_size


def explain_json(result) -> dict[str, Any]:
    """The machine contract: profile, env, unset, cargo_args, decisions, provenance, knobs, rules, warnings."""
    return {
        "profile": result.profile,
        "env": dict(result.set_env),
        "unset": list(result.unset),
        "cargo_args": list(result.cargo_args),
        "decisions": {name: d.to_json() for name, d in result.decisions.items()},
        "provenance": {name: p.to_json() for name, p in sorted(result.provenance.items())},
        "knobs": {
            name: {"value": _jsonable(kv.value), "source": kv.provenance.describe()}
            for name, kv in sorted(result.knobs.items())
        },
        "rules": [
            {
                "id": o.rule.id,
                "matched": o.matched,
                "layer": o.rule.layer,
                "file": o.rule.file,
                "line": o.rule.line,
            }
            for o in result.rules
        ],
        "unknown_facts": result.unknown_facts(),
        "warnings": list(result.warnings),
        "replay": {"replayable": not result.replay_blockers, "blockers": list(result.replay_blockers)},
    }


def replay_lines(result) -> list[str]:
    """The "Warm replay" section: whether a warm ``env`` replays this result, and while what holds."""
    from buildpolicy.facts import fact_type

    if result.replay_blockers:
        return [f"  not replayed, every `env` evaluates in full: {why}" for why in result.replay_blockers]
    lines = ["  a warm `env` with the same arguments and environment prints this result again without",
             "  evaluating, while the files it read are unchanged and these facts hold:"]
    rows = []
    for name, conditions in sorted(result.facts.dependencies().items()):
        kind = fact_type(name)
        if conditions is None:
            rows.append((name, f"= {format_fact(result.facts.peek(name), kind)}"))
            continue

        def shown(constant) -> str:
            return format_size(constant) if kind == "size" and isinstance(constant, int) else format_fact(constant)

        unique = dict.fromkeys((op, shown(c), "unknown" if o is None else format_fact(o)) for op, c, o in conditions)
        rows.append((name, "; ".join(f"{op} {c} is {o}" for op, c, o in unique)))
    return lines + _table(rows, indent="    ")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    """Align columns; the last column is free text."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _short_value(value: str, width: int = 60) -> str:
    text = repr(value) if any(c in value for c in "\n\t'\"") else value
    return text if len(text) <= width else text[: width - 1] + "…"


def explain_text(result, name: str | None = None) -> str:
    """Grouped, aligned text: decisions, environment, knobs, rules, unknown facts, warnings."""
    from buildpolicy.facts import fact_type

    sections: list[str] = []
    argv = " ".join(result.cargo_args)
    sections.append(f"buildpolicy: profile {result.profile}" + (f" — {argv}" if argv else ""))

    def wanted(*keys: str) -> bool:
        return name is None or name in keys

    lines = []
    width = max((len(key) for key in result.decisions), default=0)
    for key, decision in result.decisions.items():
        if wanted(key):
            lines.append(f"  {key.ljust(width)}  {decision.status}")
            source = decision.source if decision.source.startswith("rule ") else f"plugin {decision.source}"
            lines.append(f"  {'':{width}}    {decision.reason} [{source}]")
            lines.extend(f"  {'':{width}}      {detail}" for detail in decision.details)
    if lines:
        sections.append("Decisions\n" + "\n".join(lines))

    rows = []
    for var, value in result.set_env.items():
        if wanted(var):
            rows.append((f"{var}={_short_value(value)}", result.provenance[var].describe()))
            for other_value, where, why in result.overridden.get(var, ()):
                shown = "unset" if other_value is None else _short_value(other_value)
                rows.append((f"  not {shown}", f"{where.describe()} ({why})"))
    for var in result.unset:
        if wanted(var):
            rows.append((f"unset {var}", result.provenance[var].describe()))
    for var, others in result.overridden.items():
        if var in result.set_env or var in result.unset or not wanted(var):
            continue
        rows.append((f"{var} (kept from the caller)", "inherited"))
        for other_value, where, why in others:
            shown = "unset" if other_value is None else _short_value(other_value)
            rows.append((f"  not {shown}", f"{where.describe()} ({why})"))
    if rows or name is None:
        sections.append("Environment\n" + ("\n".join(_table(rows)) or "  (nothing to set or unset)"))

    rows, ignored = [], []  # ignored: bad inherited values passed over (each one line, not a table cell)
    for key, kv in sorted(result.knobs.items()):
        if wanted(key):
            spec = result.knob_specs.get(key)
            env_names = ", ".join(spec.env_names) if spec else ""
            value = "unset" if kv.value is None else format_fact(kv.value)
            rows.append((key, value, kv.provenance.describe(), env_names))
            ignored.extend(f"  {key}: ignored {message}" for message in getattr(kv, "rejected", ()))
    if rows:
        sections.append("Knobs (name, value, source, variables)\n" + "\n".join([*_table(rows), *ignored]))

    rows = []
    for outcome in result.rules:
        rule = outcome.rule
        if wanted(rule.id):
            mark = "matched" if outcome.matched else "no"
            rows.append((mark, rule.id, f"{rule.layer} {rule.file}:{rule.line}", outcome.note))
    for lower, higher in result.policy_set.replaced:
        if wanted(lower.id):
            rows.append(("replaced", lower.id, f"{lower.layer} {lower.file}:{lower.line}", f"by {higher.layer} {higher.file}:{higher.line}"))
    if rows:
        sections.append("Rules\n" + "\n".join(_table(rows)))

    unknown = result.unknown_facts()
    facts_rows = []
    if name is not None and fact_type(name) is not None and name not in result.decisions:
        value = result.facts.get(name)
        facts_rows.append((name, format_fact(value, fact_type(name)), result.facts.unknown_reason(name) or ""))
    elif name is None:
        facts_rows = [(fact, "unknown", why) for fact, why in sorted(unknown.items())]
    if facts_rows:
        title = "Facts" if name else "Unknown facts (comparisons with them are false)"
        sections.append(title + "\n" + "\n".join(_table(facts_rows)))

    if result.warnings and name is None:
        sections.append("Warnings\n" + "\n".join(f"  {w}" for w in result.warnings))
    if name is None:
        layers = "\n".join(f"  {layer:<8} {path}" for layer, path in result.policy_set.files)
        sections.append("Files read\n" + (layers or "  (none)"))
        sections.append("Warm replay\n" + "\n".join(replay_lines(result)))
    elif len(sections) == 1:
        return ""
    return "\n\n".join(sections) + "\n"

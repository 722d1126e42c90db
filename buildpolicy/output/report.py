"""``explain`` output: the JSON contract of DESIGN §7, the warm-replay lines and aligned tables
(the text for people is ``explain_text``)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
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

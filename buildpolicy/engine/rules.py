"""Match the rules of every layer against the facts: outcomes, knob-rule
decisions and the ``decide`` entries of matched rules."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.record import frozen
from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import LAYER_RANK, Decision, Rule
from buildpolicy.sizes import format_size


@frozen
class RuleOutcome:
    """Whether a rule matched, and which unknown facts it consulted."""

    rule: Rule
    matched: bool
    unknown_facts: tuple[str, ...] = ()
    note: str = ""


def evaluate_rules(rules, knobs, facts):
    """Match every enabled rule; return outcomes, knob-rule decisions, and `decide` entries."""
    outcomes: list[RuleOutcome] = []
    decisions: dict[str, Decision] = {}
    # Rules share their compiled `when`s, and once the first few rules have probed the
    # facts the summary of a `when` stays the same: made once per `when` and probe state.
    summaries: dict[tuple[int, tuple[int, int]], str] = {}
    for rule in sorted(rules, key=lambda r: (LAYER_RANK[r.layer], -r.priority, r.order)):
        if not rule.enabled:
            outcomes.append(RuleOutcome(rule, False, note="disabled (enabled = false)"))
            continue
        unknown: frozenset[str] = frozenset()
        switch = knobs[rule.knob].value if rule.knob else "auto"
        if switch == "off":
            matched, note = False, f"knob {rule.knob} = off"
        elif switch == "on":
            matched, note = True, f"knob {rule.knob} = on"
        elif rule.when is None:
            matched, note = True, "no `when`: always applies"
        else:
            # The rule's dependencies: the comparisons it made, not exact values, so
            # a warm `env` replay survives free memory drifting (buildpolicy.replay).
            facts.consumer = f"rule {rule.id}"
            matched, unknown = rule.when.evaluate(facts.peek, exact=facts.get, condition=facts.condition)
            facts.consumer = "engine"
            key = (id(rule.when), facts.probe_state())
            summary = summaries.get(key)
            if summary is None:
                summary = summaries[key] = fact_summary(rule.when, facts)
            note = ("`when` is true" if matched else "`when` is false") + f" with {summary}"
            if unknown:
                note += f"; unknown: {', '.join(sorted(unknown))}"
        outcomes.append(RuleOutcome(rule, matched, tuple(sorted(unknown)), note))
        if rule.knob:
            decisions[rule.knob] = _knob_rule_decision(rule, switch, matched, unknown, knobs, facts)
    return outcomes, decisions, _policy_decisions(outcomes)


def check_decide_values(rules, specs) -> None:
    """A rule's ``decide`` value for a decision that has a knob of the same name
    must be a value that knob allows (``sccache = "of"`` is a typo, not a choice).

    Every rule is checked, matched or not, so ``check`` and ``env`` agree on
    every machine; each error points at the value (``file:line:col``).
    """
    from buildpolicy.policy.knobs import coerce

    errors = []
    for rule in rules:
        for name, value in rule.decide:
            spec = specs.get(name)
            if spec is None:
                continue
            try:
                coerce(spec, value)
            except ValueError as exc:
                errors.append(f"{rule.where('decide.' + name)}: rule {rule.id}: decide.{name} = {value!r} is not allowed; "
                              f"allowed: {exc}")
    if errors:
        raise BuildpolicyError(errors)


def _policy_decisions(outcomes) -> dict[str, tuple[Any, str]]:
    """The ``decide`` entries of matched rules: ``{decision: (value, rule id)}``.

    Like env entries: the higher layer wins, then the higher priority; two rules
    of the same layer and priority deciding one thing differently are an error
    naming both.
    """
    chosen: dict[str, tuple[tuple[int, int], Any, Rule]] = {}
    conflicts = []
    for outcome in outcomes:
        if not outcome.matched:
            continue
        rule = outcome.rule
        rank = (LAYER_RANK[rule.layer], rule.priority)
        for name, value in rule.decide:
            previous = chosen.get(name)
            if previous is None or rank > previous[0]:
                chosen[name] = (rank, value, rule)
            elif rank == previous[0] and value != previous[1]:
                other = previous[2]
                conflicts.append(
                    f"decide.{name}: rule {other.id} ({other.file}:{other.line}) decides {previous[1]!r} but rule "
                    f"{rule.id} ({rule.file}:{rule.line}) decides {value!r} in the same layer ({rule.layer}) with the "
                    f"same priority ({rule.priority}); give one a higher `priority` or make their `when`s exclusive"
                )
    if conflicts:
        raise BuildpolicyError(conflicts)
    return {name: (value, rule.id) for name, (_rank, value, rule) in chosen.items()}


def fact_summary(expr, facts) -> str:
    """``name=value`` for each fact of ``expr`` that was looked up (evaluation short-circuits)."""
    from buildpolicy.facts import fact_type
    from buildpolicy.facts.display import format_fact

    probed = facts.probed()
    parts = []
    for name in sorted(expr.facts_used):
        if name in probed:
            kind = fact_type(name)
            value = probed[name]
            shown = format_fact(value, None) if kind != "size" or value is None else format_size(value)
            parts.append(f"{name}={shown}")
    return ", ".join(parts) or "no facts looked up"


def _knob_rule_decision(rule: Rule, switch: str, matched: bool, unknown, knobs, facts) -> Decision:
    source = knobs[rule.knob].provenance
    if switch == "off":
        status, reason = "disabled-by-knob", f"knob {rule.knob} is off ({source.describe()})"
    elif switch == "on":
        status, reason = "forced-by-knob", f"knob {rule.knob} is on ({source.describe()}): rule {rule.id} applies regardless of `when`"
    elif matched:
        status = rule.status or "enabled"
        reason = f"rule {rule.id} matched: {rule.description or rule.when.text if rule.when else rule.id}"
    else:
        status = "auto-not-needed"
        reason = f"rule {rule.id} did not match: {rule.when.text if rule.when else ''} (with {fact_summary(rule.when, facts)})"
        if unknown:
            reason += f"; unknown facts: {', '.join(sorted(unknown))}"
    return Decision(rule.knob, matched, status, reason, source=f"rule {rule.id}")

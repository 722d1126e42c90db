"""Compose the environment: choose each variable's value among rule and plugin
candidates, and join rustflags fragments into the variable cargo will read."""

from __future__ import annotations

import attrs

from buildpolicy.engine.context import DecideContext
from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import LAYER_RANK, HandledWarning, Provenance, Rule, check_name
from buildpolicy.policy.buildvars import STATE_VAR
from buildpolicy.policy.expr.templates import interpolate

PLUGIN_RANK = -1  # plugin patches sit below every rule layer


@attrs.frozen
class Candidate:
    """One proposed value (or unset, ``value is None``) for a variable."""

    value: str | None
    provenance: Provenance
    rank: int
    priority: int
    force: bool


def _interpolate(template: str, facts, ctx: DecideContext, rule: Rule, *, name: bool = False) -> str | None:
    """``template`` with its ``${fact}`` parts filled in. An unknown fact becomes the empty
    string in a value; a variable *name* made from an unknown fact (``CARGO_${x}`` would be
    ``CARGO_``) is no name at all: None, and the entry is not set."""
    text, unknown = interpolate(template, facts.get)
    if unknown:
        facts_text = ", ".join(sorted(unknown))
        if name:
            ctx.warn(f"rule {rule.id}: {template!r} uses unknown fact(s) {facts_text}: the variable is not set")
            return None
        ctx.warn(f"rule {rule.id}: {template!r} uses unknown fact(s) {facts_text}")
    return text


def compose_env(outcomes, decisions, facts, baseline, ctx, policy_set=None):
    """Choose each variable's value among rule and plugin candidates."""
    candidates: dict[str, list[Candidate]] = {}
    for decision in decisions.values():
        where = Provenance("plugin", f"plugin {decision.source}")
        if STATE_VAR in dict(decision.set_env) or STATE_VAR in decision.unset:
            ctx.warn(f"plugin {decision.source!r} sets or unsets {STATE_VAR}, buildpolicy's own record; ignored")
        for name, value in decision.set_env:
            if name != STATE_VAR:
                candidates.setdefault(name, []).append(Candidate(value, where, PLUGIN_RANK, 0, decision.force))
        for name in decision.unset:
            if name != STATE_VAR:
                candidates.setdefault(name, []).append(Candidate(None, where, PLUGIN_RANK, 0, True))
    for outcome in outcomes:
        if not outcome.matched:
            continue
        rule = outcome.rule
        source = policy_set.rule_source(rule) if policy_set is not None else f"rule {rule.id}"
        for entry in rule.env:
            name = _interpolate(entry.name, facts, ctx, rule, name=True)
            if name is None:
                continue
            value = _interpolate(entry.value, facts, ctx, rule)
            where = Provenance(rule.layer, source, rule.file, entry.line or rule.line, entry.col)
            check_name(name)
            if name == STATE_VAR:
                # Only a name made from facts gets here: the loader refuses the literal name.
                raise BuildpolicyError(f"{where.where()}: rule {rule.id!r}: {entry.name!r} became {STATE_VAR}, the record "
                                       "`buildpolicy env` keeps of what it changed; no rule may set it")
            candidates.setdefault(name, []).append(Candidate(value, where, LAYER_RANK[rule.layer], rule.priority, rule.force))
        for name in rule.unset:
            where = Provenance(rule.layer, source, rule.file, rule.line)
            candidates.setdefault(name, []).append(Candidate(None, where, LAYER_RANK[rule.layer], rule.priority, True))

    set_env: dict[str, str] = {}
    unset: list[str] = []
    provenance: dict[str, Provenance] = {}
    overridden: dict[str, list[tuple[str | None, Provenance, str]]] = {}
    conflicts = []
    for name, items in candidates.items():
        items.sort(key=lambda c: (c.rank, c.priority), reverse=True)
        winner = items[0]
        for other in items[1:]:
            if (other.rank, other.priority) == (winner.rank, winner.priority) and other.value != winner.value:
                if winner.rank != PLUGIN_RANK:
                    conflicts.append(
                        f"{name}: {winner.provenance.source} ({winner.provenance.where()}) sets "
                        f"{winner.value!r} but {other.provenance.source} ({other.provenance.where()}) "
                        f"sets {other.value!r} in the same layer ({winner.provenance.layer}) with the same priority "
                        f"({winner.priority}); give one a higher `priority` or make their `when`s exclusive"
                    )
            overridden.setdefault(name, []).append((other.value, other.provenance, "lower precedence"))
        if winner.value is None:
            if name in baseline:
                unset.append(name)
                provenance[name] = winner.provenance
            continue
        if name in baseline and not winner.force:
            overridden.setdefault(name, []).insert(0, (winner.value, winner.provenance, "the caller's value wins (no force)"))
            provenance[name] = Provenance("inherited", "from the caller's environment")
            continue
        set_env[name] = winner.value
        provenance[name] = winner.provenance
    if conflicts:
        raise BuildpolicyError(conflicts)
    return set_env, unset, provenance, overridden


ENCODED_SEPARATOR = "\x1f"  # CARGO_ENCODED_RUSTFLAGS separates arguments with 0x1f


def rustflags_variable(facts, baseline) -> tuple[str, str | None]:
    """Which variable carries buildpolicy's rustflags, and why when it is not the usual one.

    cargo takes its flags from the first source that has any:
    CARGO_ENCODED_RUSTFLAGS, RUSTFLAGS, target-level flags
    (``CARGO_TARGET_<TRIPLE>_RUSTFLAGS`` merged with ``[target.*] rustflags``),
    then build-level flags (``CARGO_BUILD_RUSTFLAGS`` merged with ``[build]
    rustflags``). Joining the source cargo will read keeps everybody's flags:
    setting the target variable while only ``[build] rustflags`` exist would
    silently drop the project's flags.
    """
    triple = facts.get("host.triple")
    target_var = f"CARGO_TARGET_{triple.upper().replace('-', '_')}_RUSTFLAGS" if triple else None
    for var in ("CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS"):
        if var in baseline:
            shadowed = target_var or "the target and build rustflags"
            return var, f"{var} is set by the caller and would shadow {shadowed}; buildpolicy's rustflags are merged into {var} instead"
    if target_var is None:
        return "RUSTFLAGS", "host.triple is unknown: composed rustflags go to RUSTFLAGS"
    levels = facts.get("cargo.config_rustflags") or []
    target_level = target_var in baseline or any(level.startswith("target:") for level in levels)
    if not target_level and ("CARGO_BUILD_RUSTFLAGS" in baseline or "build" in levels):
        where = "CARGO_BUILD_RUSTFLAGS" if "CARGO_BUILD_RUSTFLAGS" in baseline else "[build] rustflags in the cargo config"
        return "CARGO_BUILD_RUSTFLAGS", (
            f"{where} would be ignored by cargo if {target_var} were set; "
            "buildpolicy's rustflags join CARGO_BUILD_RUSTFLAGS instead (cargo merges it with [build] rustflags)"
        )
    return target_var, None


def compose_rustflags(outcomes, decisions, facts, baseline, set_env, provenance, ctx) -> None:
    """Join rustflags fragments in one deterministic order into the variable cargo will read.

    Order: matched rules by layer then load order, then plugin decisions by
    name. Identical fragments are kept once. The caller's flags in that
    variable come first.
    """
    fragments: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()  # of fragments: a list lookup per rule made this quadratic
    sources: list[str] = []
    for outcome in sorted((o for o in outcomes if o.matched), key=lambda o: (LAYER_RANK[o.rule.layer], o.rule.order)):
        if outcome.rule.rustflags and outcome.rule.rustflags not in seen:
            seen.add(outcome.rule.rustflags)
            fragments.append(outcome.rule.rustflags)
            sources.append(f"rule {outcome.rule.id}")
    for name in sorted(decisions):
        flags = decisions[name].rustflags
        if flags and flags not in seen:
            seen.add(flags)
            fragments.append(flags)
            sources.append(f"plugin {decisions[name].source} ({name})")
    if not fragments:
        return
    ours = [flag for fragment in fragments for flag in fragment]
    var, why = rustflags_variable(facts, baseline)
    if why:
        ctx.warn(HandledWarning(why))  # the flags went where cargo reads them: said once
    inherited = set_env.get(var, baseline.get(var, ""))
    if var == "CARGO_ENCODED_RUSTFLAGS":
        set_env[var] = ENCODED_SEPARATOR.join(([inherited] if inherited else []) + ours)
    else:
        inherited = inherited.strip()
        set_env[var] = " ".join(([inherited] if inherited else []) + ours)
    provenance[var] = Provenance("engine", "rustflags composed from " + ", ".join(sources) + (" after the caller's flags" if inherited else ""))

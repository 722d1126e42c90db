"""Compose the environment: choose each variable's value among rule and plugin
candidates, and join rustflags fragments into the variable cargo will read."""

from __future__ import annotations

from buildpolicy.record import frozen
from buildpolicy.engine.context import DecideContext
from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import LAYER_RANK, HandledWarning, Provenance, Rule, check_name
from buildpolicy.policy.buildvars import STATE_VAR
from buildpolicy.policy.expr.templates import interpolate

PLUGIN_RANK = -1  # plugin patches sit below every rule layer


@frozen
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
# Set by `exec` in the command's environment (its pid): a `buildpolicy` run that finds it
# runs inside an exec (a build script, a cargo alias, an xtask calling exec again).
EXEC_VAR = "BUILDPOLICY_EXEC"


def _contains(flags: list[str], fragment: tuple[str, ...]) -> bool:
    """Whether ``fragment`` appears in ``flags`` as consecutive arguments."""
    size = len(fragment)
    return any(tuple(flags[i:i + size]) == fragment for i in range(len(flags) - size + 1))


def rustflags_variable(facts, baseline, triple: str | None = None) -> tuple[str, str | None]:
    """Which variable carries buildpolicy's rustflags for ``triple`` (default: the host),
    and why when it is not the usual one.

    cargo takes its flags from the first source that has any:
    CARGO_ENCODED_RUSTFLAGS, RUSTFLAGS, target-level flags
    (``CARGO_TARGET_<TRIPLE>_RUSTFLAGS`` merged with ``[target.*] rustflags``),
    then build-level flags (``CARGO_BUILD_RUSTFLAGS`` merged with ``[build]
    rustflags``). Joining the source cargo will read keeps everybody's flags:
    setting the target variable while only ``[build] rustflags`` exist would
    silently drop the project's flags.
    """
    triple = triple or facts.get("host.triple")
    target_var = target_rustflags_name(triple) if triple else None
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


def target_rustflags_name(triple: str) -> str:
    """``CARGO_TARGET_<TRIPLE>_RUSTFLAGS`` as cargo spells it for ``triple``."""
    return f"CARGO_TARGET_{triple.upper().replace('-', '_').replace('.', '_')}_RUSTFLAGS"


def build_triples(facts) -> list[str | None]:
    """The triples cargo compiles the crates for: ``cargo.targets``, else the host
    (None when even that is unknown)."""
    return list(facts.get("cargo.targets") or []) or [facts.get("host.triple")]


def _fragments(outcomes, decisions, triple, host) -> tuple[list[tuple[str, ...]], list[str]]:
    """The rustflags fragments for ``triple`` in their one order, each once, and their sources.

    Rules by layer then load order, then plugin decisions by name. A decision with
    per-target outcomes gives the host its ``rustflags`` and every other triple its
    target's; any other decision's and rule's fragments apply to every triple.
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
        decision = decisions[name]
        flags = decision.rustflags
        if decision.targets and triple != host:
            flags = next((t.rustflags for t in decision.targets if t.triple == triple), ())
        if flags and flags not in seen:
            seen.add(flags)
            fragments.append(flags)
            sources.append(f"plugin {decision.source} ({name})" + (f" for {triple}" if triple != host else ""))
    return fragments, sources


def compose_rustflags(outcomes, decisions, facts, baseline, set_env, provenance, ctx) -> None:
    """Join rustflags fragments in one deterministic order into the variable cargo will
    read for each triple it compiles for (see ``build_triples``).

    Order: matched rules by layer then load order, then plugin decisions by
    name. Identical fragments are kept once. The caller's flags in that
    variable come first. Triples whose variable is shared (``RUSTFLAGS``,
    ``CARGO_BUILD_RUSTFLAGS``) get only the fragments they all have.
    """
    host = facts.get("host.triple")
    by_var: dict[str, tuple[list[tuple[str, ...]], list[str], list]] = {}
    for triple in build_triples(facts):
        fragments, sources = _fragments(outcomes, decisions, triple, host)
        if not fragments:
            continue
        var, why = rustflags_variable(facts, baseline, triple)
        if why:
            ctx.warn(HandledWarning(why))  # the flags went where cargo reads them: said once
        if var not in by_var:
            by_var[var] = (fragments, sources, [triple])
            continue
        kept, kept_sources, triples = by_var[var]
        common = [(f, src) for f, src in zip(kept, kept_sources) if f in fragments]
        if len(common) != len(kept) or len(common) != len(fragments):
            ctx.warn(f"{var} carries the rustflags of every target ({', '.join(map(str, [*triples, triple]))}): "
                     "only the flags they share are set there")
        by_var[var] = ([f for f, _ in common], [src for _, src in common], [*triples, triple])
    for var, (fragments, sources, _triples) in sorted(by_var.items()):
        if fragments:
            _join_into(var, fragments, sources, baseline, set_env, provenance)


def _join_into(var, fragments, sources, baseline, set_env, provenance) -> None:
    """Append ``fragments`` to the caller's flags in ``var``."""
    inherited = set_env.get(var, baseline.get(var, ""))
    encoded = var == "CARGO_ENCODED_RUSTFLAGS"
    inherited = inherited if encoded else inherited.strip()
    nested = ""
    if baseline.get(EXEC_VAR) and inherited:
        # Inside an exec, cargo hands a build script the outer build's flags (ours among
        # them) in CARGO_ENCODED_RUSTFLAGS: adding them again would change every flag
        # and rebuild the nested build from scratch. Fragments already there stay once.
        present = inherited.split(ENCODED_SEPARATOR) if encoded else inherited.split()
        kept = [(f, src) for f, src in zip(fragments, sources) if not _contains(present, f)]
        if len(kept) < len(fragments):
            nested = f"; inside buildpolicy exec (pid {baseline[EXEC_VAR]}) the flags already in {var} are not added again"
        fragments, sources = [f for f, _ in kept], [src for _, src in kept]
        if not fragments:
            provenance.setdefault(var, Provenance("inherited", "from the caller's environment" + nested))
            return
    ours = [flag for fragment in fragments for flag in fragment]
    separator = ENCODED_SEPARATOR if encoded else " "
    set_env[var] = separator.join(([inherited] if inherited else []) + ours)
    provenance[var] = Provenance("engine", "rustflags composed from " + ", ".join(sources)
                                 + (" after the caller's flags" if inherited else "") + nested)

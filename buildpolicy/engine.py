"""Evaluate one run: facts + layered rules + plugin decisions → an environment.

Plugins propose, the engine decides: rule ``env`` entries and plugin patches
are collected as candidates per variable, the winner is chosen by layer and
priority (rules beat plugins; same layer and priority with different values
is an error naming both rules), an inherited value wins unless forced, and
every output variable keeps its provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from buildpolicy.context import DecideContext
from buildpolicy.envstate import STATE_VAR, encode_state, restore_baseline
from buildpolicy.errors import BuildpolicyError
from buildpolicy.memo import stat_token
from buildpolicy.model import LAYER_RANK, Decision, KnobSpec, KnobValue, Provenance, Rule
from buildpolicy.paths import Paths, find_profile
from buildpolicy.sizes import format_size

PLUGIN_RANK = -1  # plugin patches sit below every rule layer


@attrs.frozen
class Request:
    """The inputs of one run. Tests build these directly."""

    cwd: Path
    environ: Mapping[str, str]
    command: str = "env"
    cargo_argv: tuple[str, ...] | None = None
    profile_flag: str | None = None
    cli_sets: tuple[str, ...] = ()
    fact_overrides: Mapping[str, Any] | None = None
    hermetic: bool = False  # facts not overridden are unknown (policy tests)
    extra_plugins: tuple[tuple[str, Any], ...] = ()
    entry_points: bool = True
    emit_state: bool = False  # `env` exports BUILDPOLICY_ENV_STATE
    # How untrusted project/pack files are treated (buildpolicy.trust):
    # "enforce" refuses, "report" warns and skips their plugins and sensitive
    # knobs, "ignore" does neither. None: enforce for env/exec, ignore for
    # test, report otherwise.
    trust: str | None = None
    paths: Paths | None = None  # directories to use instead of the environ's (policy tests)


TRUST_ENFORCED = ("env", "exec")
TRUST_IGNORED = ("test",)


def trust_mode(request: Request) -> str:
    """``enforce``, ``report`` or ``ignore`` for ``request`` (see ``Request.trust``)."""
    if request.trust is not None:
        return request.trust
    if request.command in TRUST_ENFORCED:
        return "enforce"
    return "ignore" if request.command in TRUST_IGNORED else "report"


@attrs.frozen
class RuleOutcome:
    """Whether a rule matched, and which unknown facts it consulted."""

    rule: Rule
    matched: bool
    unknown_facts: tuple[str, ...] = ()
    note: str = ""


@attrs.frozen
class Candidate:
    """One proposed value (or unset, ``value is None``) for a variable."""

    value: str | None
    provenance: Provenance
    rank: int
    priority: int
    force: bool


@attrs.define
class Result:
    """Everything a run decided, with provenance, for renderers and ``explain``."""

    profile: str
    set_env: dict[str, str]
    unset: list[str]
    provenance: dict[str, Provenance]
    overridden: dict[str, list[tuple[str | None, Provenance, str]]]
    decisions: dict[str, Decision]
    knobs: dict[str, KnobValue]
    knob_specs: dict[str, KnobSpec]
    rules: list[RuleOutcome]
    warnings: list[str]
    cargo_args: list[str]
    facts: Any
    baseline: dict[str, str]
    policy_set: Any
    paths: Paths
    plugins: Any
    context: DecideContext
    replay: dict[str, Any] | None = None  # what a warm `env` may replay (buildpolicy.memo)
    replay_blockers: list[str] = attrs.Factory(list)  # why a warm `env` could not replay this

    def exec_env(self) -> dict[str, str]:
        """The full environment for a child process."""
        env = dict(self.baseline)
        for name in self.unset:
            env.pop(name, None)
        env.update(self.set_env)
        env.pop(STATE_VAR, None)
        return env

    def unknown_facts(self) -> dict[str, str]:
        """Machine facts that were asked for and are unknown, with the reason.

        Facts of the invocation (``cargo.toolchain_override`` without a
        ``+toolchain``, an unset ``env.X``) are null by design, not unknown.
        """
        registry = self.facts.registry
        return {
            name: self.facts.unknown_reason(name) or "unknown"
            for name, value in self.facts.probed().items()
            if value is None and not getattr(registry.spec_for(name), "from_invocation", False)
        }


def _fact_type_with(extra: dict[str, str]):
    from buildpolicy.facts import fact_type

    def lookup(name: str) -> str | None:
        return extra.get(name) or fact_type(name)

    return lookup


@attrs.define
class Prepared:
    """A run up to knob resolution: policies loaded and trusted (or not), plugins registered."""

    baseline: dict[str, str]
    touched: dict[str, str | None]
    paths: Paths
    policy_set: Any
    host: Any
    plugin_facts: dict[str, Any]
    knob_specs: dict[str, KnobSpec]
    file_knobs: tuple[Any, ...]  # knob values from files that this run may use
    warnings: list[str]
    # Every file and directory read or listed, with its stat token taken before
    # (or right after) reading it, for buildpolicy.memo.
    input_files: list[tuple[str, str]]


def prepare(request: Request) -> Prepared:
    """Load the policies of every layer, check trust and register plugins.

    ``evaluate`` continues from here; ``buildpolicy set`` and ``buildpolicy
    test`` use it alone to learn the declared knobs and facts.
    """
    from buildpolicy.data import policies_dir
    from buildpolicy.facts import known_fact_names
    from buildpolicy.loader import load_policies
    from buildpolicy.pluginhost import make_plugin_manager

    warnings: list[str] = []
    baseline, touched = restore_baseline(request.environ)
    paths = request.paths or Paths.from_environ(baseline)
    input_files: list[tuple[str, str]] = []
    profile_path = find_profile(request.cwd, looked_at=input_files)

    # Plugins first: they may declare facts that rules use. Team-local plugin
    # paths come from the profile file, read through the policy cache below,
    # so they are registered after loading (their facts are then only usable
    # by their own decisions, which is what team plugins need).
    host = make_plugin_manager(
        cache_dir=paths.cache_dir, extra_plugins=request.extra_plugins, entry_points=request.entry_points
    )
    plugin_facts = {spec.name: spec for spec in host.fact_specs()}
    fact_type = _fact_type_with({name: spec.type for name, spec in plugin_facts.items()})
    policy_set = load_policies(
        profile=profile_path,
        site_dir=paths.site_dir,
        user_dir=paths.user_dir,
        builtin_dir=policies_dir(),
        fact_type=fact_type,
        known_facts=[*known_fact_names(), *plugin_facts],
        cache_dir=paths.cache_dir,
        extra_key=",".join(sorted(f"{n}:{s.type}" for n, s in plugin_facts.items())),
        inputs_out=input_files,
    )
    # Trust (DESIGN §9): only when project or pack files hold something beyond
    # build variables, and then only stats unless a file changed.
    trusted = True
    file_knobs = policy_set.knob_values
    mode = trust_mode(request)
    if policy_set.trust_findings and mode != "ignore":
        from buildpolicy import trust

        verdict = trust.check(policy_set, paths.state_dir)
        if policy_set.profile_path:
            record = trust.record_path(paths.state_dir, policy_set.profile_path)
            input_files.append((str(record), stat_token(record)))
        if not verdict.trusted:
            if mode == "enforce":
                raise trust.refusal(policy_set, verdict)
            trusted = False
            warnings.extend(trust.warnings_for(policy_set, verdict))
            untrusted = {(f.file, f.name) for f in policy_set.trust_findings if f.kind == "knob"}
            file_knobs = tuple(k for k in file_knobs if (k.provenance.file, k.name) not in untrusted)
    plugin_paths = policy_set.plugin_paths if trusted else ()
    if plugin_paths or policy_set.disable_plugins:
        host = make_plugin_manager(
            cache_dir=paths.cache_dir,
            plugin_paths=[Path(p) for p in plugin_paths],
            disabled=policy_set.disable_plugins,
            extra_plugins=request.extra_plugins,
            entry_points=request.entry_points,
        )
        plugin_facts = {spec.name: spec for spec in host.fact_specs()}
    warnings.extend(host.load_errors)
    specs = _knob_specs(host, policy_set)
    return Prepared(baseline, touched, paths, policy_set, host, plugin_facts, specs, tuple(file_knobs), warnings,
                    input_files)


def evaluate(request: Request) -> Result:
    """Run the whole pipeline for ``request``; raise BuildpolicyError on user errors."""
    import time

    from buildpolicy.facts import FactStore, ProbeContext
    from buildpolicy.knobs import resolve_knobs

    started_ns = time.time_ns()  # files changed after this are not trusted for a replay
    prepared = prepare(request)
    baseline, touched, paths = prepared.baseline, prepared.touched, prepared.paths
    policy_set, host, plugin_facts = prepared.policy_set, prepared.host, prepared.plugin_facts
    specs, warnings = prepared.knob_specs, prepared.warnings
    knobs = resolve_knobs(specs.values(), prepared.file_knobs, baseline, request.cli_sets, warnings.append)

    probe_ctx = ProbeContext(
        cwd=request.cwd,
        environ=baseline,
        cargo_argv=request.cargo_argv,
        profile_flag=request.profile_flag,
        default_profile=policy_set.default_profile,
        project_root=Path(policy_set.project_root) if policy_set.project_root else None,
        cache_dir=paths.cache_dir / "probes",
    )
    facts = FactStore(probe_ctx, request.fact_overrides, hermetic=request.hermetic, extra_specs=plugin_facts)

    outcomes, rule_decisions, policy_decisions = _evaluate_rules(policy_set.rules, knobs, facts)
    _check_policy_decisions(policy_decisions, specs, policy_set.rules)
    ctx = DecideContext(
        facts=facts,
        knobs=knobs,
        environ=baseline,
        options=policy_set.options,
        policy_decisions=policy_decisions,
        cargo_argv=request.cargo_argv,
        command=request.command,
        feature_profiles=policy_set.feature_profiles,
        cache_dir=paths.cache_dir,
        state_dir=paths.state_dir,
        warnings=warnings,
    )
    decisions = dict(rule_decisions)
    for name, decision in host.decide(ctx).items():
        if name in decisions:
            ctx.warn(f"plugin {decision.source!r} decision {name!r} is ignored: rule-governed knob {name!r} decides it")
            continue
        decisions[name] = decision
    warnings.extend(w for w in host.warnings if w not in warnings)
    for name, (_value, rule_id) in sorted(policy_decisions.items()):
        if name not in decisions:
            ctx.warn(f"rule {rule_id} decides {name!r}, but no plugin makes a decision of that name "
                     f"(decisions: {', '.join(sorted(decisions))})")

    set_env, unset, provenance, overridden = _compose_env(outcomes, decisions, facts, baseline, ctx, policy_set)
    _compose_rustflags(outcomes, decisions, facts, baseline, set_env, provenance, ctx)

    # Variables a previous `env` set that this run does not: restore the caller's value.
    for name, before in touched.items():
        if name in set_env or name in unset:
            continue
        if before is None:
            unset.append(name)
            provenance[name] = Provenance("engine", "no longer decided: unset what a previous `env` set")
        else:
            set_env[name] = before
            provenance[name] = Provenance("inherited", "restored the value a previous `env` replaced")
    unset = sorted(set(unset))
    if request.emit_state:
        set_env[STATE_VAR] = encode_state({k: v for k, v in set_env.items()}, unset, baseline)
        provenance[STATE_VAR] = Provenance("engine", "what this output changed, so the next run can undo it")

    cargo_args = list(request.cargo_argv or ())
    insert = [arg for d in decisions.values() for arg in d.cargo_args]
    if insert and cargo_args:
        position = cargo_args.index("--") if "--" in cargo_args else len(cargo_args)
        cargo_args[position:position] = insert

    profile = facts.peek("cargo.profile") or request.profile_flag or policy_set.default_profile
    from buildpolicy import replay_record

    replay_blockers = replay_record.blockers(request, prepared, facts, ctx)
    replay = None
    if request.command == "env" and not replay_blockers:
        replay = replay_record.build(prepared, facts, probe_ctx, ctx, started_ns)
    return Result(
        profile=profile,
        set_env=dict(sorted(set_env.items())),
        unset=unset,
        provenance=provenance,
        overridden=overridden,
        decisions=dict(sorted(decisions.items())),
        knobs=knobs,
        knob_specs=specs,
        rules=outcomes,
        warnings=warnings,
        cargo_args=cargo_args,
        facts=facts,
        baseline=baseline,
        policy_set=policy_set,
        paths=paths,
        plugins=host,
        context=ctx,
        replay=replay,
        replay_blockers=replay_blockers,
    )


def _knob_specs(host, policy_set) -> dict[str, KnobSpec]:
    """Plugin knobs, team knobs and rule knobs, with the profile's aliases and value aliases applied."""
    from buildpolicy.knobs import coerce

    specs = {spec.name: spec for spec in host.knob_specs()}
    declared_by_plugins = set(specs)
    errors = []
    for decl in policy_set.knob_declarations:
        spec = specs.get(decl.name)
        where = f"{decl.provenance.file}:{decl.provenance.line}"
        if spec is not None and decl.name in declared_by_plugins:
            retyped = [key for key in ("type", "values", "minimum") if decl.get(key) is not None]
            if retyped:
                errors.append(f"{where}: [knobs.{decl.name}] cannot change {', '.join(retyped)}: knob {decl.name!r} is "
                              f"declared by {spec.declared_by}; a profile may add aliases, value_aliases, a default "
                              "and a description")
                continue
        if spec is None:
            kind = decl.get("type")
            if kind is None:
                if any(rule.knob == decl.name for rule in policy_set.rules):
                    from buildpolicy.knobs import rule_knob_spec

                    spec = rule_knob_spec(decl.name, next(r.id for r in policy_set.rules if r.knob == decl.name))
                else:
                    errors.append(f"{where}: [knobs.{decl.name}] declares no `type` and no plugin declares knob {decl.name!r}")
                    continue
            else:
                if kind == "enum" and not decl.get("values"):
                    errors.append(f"{where}: enum knob {decl.name!r} needs `values`")
                    continue
                spec = KnobSpec(
                    name=decl.name,
                    type=kind,
                    values=tuple(decl.get("values", ())),
                    minimum=decl.get("minimum"),
                    description=decl.get("description", ""),
                    declared_by=f"{decl.provenance.layer} {decl.provenance.file}",
                )
        specs[decl.name] = attrs.evolve(
            spec,
            aliases=tuple(dict.fromkeys((*spec.aliases, *decl.get("aliases", ())))),
            value_aliases=(*spec.value_aliases, *sorted(decl.get("value_aliases", {}).items())),
        )
    for rule in policy_set.rules:
        if rule.knob and rule.knob not in specs:
            from buildpolicy.knobs import rule_knob_spec

            specs[rule.knob] = rule_knob_spec(rule.knob, rule.id)
    for decl in policy_set.knob_declarations:  # defaults are checked with the declarations
        spec = specs.get(decl.name)
        if spec is not None and decl.get("default") is not None:
            try:
                coerce(spec, decl.get("default"))
            except ValueError as exc:
                errors.append(f"{decl.provenance.file}:{decl.provenance.line}: knob {decl.name!r}: bad default "
                              f"{decl.get('default')!r}; allowed: {exc}")
    errors += _alias_collisions(specs)
    if errors:
        raise BuildpolicyError(errors)
    return specs


def _alias_collisions(specs: dict[str, KnobSpec]) -> list[str]:
    """An environment name may set one knob only: two knobs sharing an alias, or an
    alias that is another knob's ``BUILDPOLICY_<KNOB>``, would make a value go astray."""
    owner: dict[str, str] = {}
    errors = []
    for name in sorted(specs):
        for var in specs[name].env_names:
            if var in owner and owner[var] != name:
                errors.append(f"environment variable {var} would set both knob {owner[var]!r} and knob {name!r}: "
                              "give each knob its own aliases")
            owner.setdefault(var, name)
    return errors


def _evaluate_rules(rules, knobs, facts):
    """Match every enabled rule; return outcomes, knob-rule decisions, and `decide` entries."""
    outcomes: list[RuleOutcome] = []
    decisions: dict[str, Decision] = {}
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
            # a warm `env` replay survives free memory drifting (buildpolicy.memo).
            facts.consumer = f"rule {rule.id}"
            matched, unknown = rule.when.evaluate(facts.peek, exact=facts.get, condition=facts.condition)
            facts.consumer = "engine"
            note = ("`when` is true" if matched else "`when` is false") + f" with {fact_summary(rule.when, facts)}"
            if unknown:
                note += f"; unknown: {', '.join(sorted(unknown))}"
        outcomes.append(RuleOutcome(rule, matched, tuple(sorted(unknown)), note))
        if rule.knob:
            decisions[rule.knob] = _knob_rule_decision(rule, switch, matched, unknown, knobs, facts)
    return outcomes, decisions, _policy_decisions(outcomes)


def _check_policy_decisions(policy_decisions, specs, rules) -> None:
    """A rule's ``decide`` value for a decision that has a knob of the same name
    must be a value that knob allows (``sccache = "of"`` is a typo, not a choice)."""
    from buildpolicy.knobs import coerce

    by_id = {rule.id: rule for rule in rules}
    errors = []
    for name, (value, rule_id) in sorted(policy_decisions.items()):
        spec = specs.get(name)
        if spec is None:
            continue
        try:
            coerce(spec, value)
        except ValueError as exc:
            rule = by_id[rule_id]
            errors.append(f"{rule.file}:{rule.line}: rule {rule_id}: decide.{name} = {value!r} is not allowed; allowed: {exc}")
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
    from buildpolicy.report import format_fact

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


def _interpolate(template: str, facts, ctx: DecideContext, rule: Rule) -> str:
    from buildpolicy.expr import interpolate

    text, unknown = interpolate(template, facts.get)
    if unknown:
        ctx.warn(f"rule {rule.id}: {template!r} uses unknown fact(s) {', '.join(sorted(unknown))}")
    return text


def _compose_env(outcomes, decisions, facts, baseline, ctx, policy_set=None):
    """Choose each variable's value among rule and plugin candidates."""
    from buildpolicy.render import check_name

    candidates: dict[str, list[Candidate]] = {}
    for decision in decisions.values():
        where = Provenance("plugin", f"plugin {decision.source}")
        for name, value in decision.set_env:
            candidates.setdefault(name, []).append(Candidate(value, where, PLUGIN_RANK, 0, decision.force))
        for name in decision.unset:
            candidates.setdefault(name, []).append(Candidate(None, where, PLUGIN_RANK, 0, True))
    for outcome in outcomes:
        if not outcome.matched:
            continue
        rule = outcome.rule
        for entry in rule.env:
            name = _interpolate(entry.name, facts, ctx, rule)
            value = _interpolate(entry.value, facts, ctx, rule)
            source = policy_set.rule_source(rule) if policy_set is not None else f"rule {rule.id}"
            where = Provenance(rule.layer, source, rule.file, entry.line or rule.line)
            check_name(name)
            candidates.setdefault(name, []).append(Candidate(value, where, LAYER_RANK[rule.layer], rule.priority, rule.force))
        for name in rule.unset:
            source = policy_set.rule_source(rule) if policy_set is not None else f"rule {rule.id}"
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
                        f"{name}: {winner.provenance.source} ({winner.provenance.file}:{winner.provenance.line}) sets "
                        f"{winner.value!r} but {other.provenance.source} ({other.provenance.file}:{other.provenance.line}) "
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


def _compose_rustflags(outcomes, decisions, facts, baseline, set_env, provenance, ctx) -> None:
    """Join rustflags fragments in one deterministic order into the variable cargo will read.

    Order: matched rules by layer then load order, then plugin decisions by
    name. Identical fragments are kept once. The caller's flags in that
    variable come first.
    """
    fragments: list[tuple[str, ...]] = []
    sources: list[str] = []
    for outcome in sorted((o for o in outcomes if o.matched), key=lambda o: (LAYER_RANK[o.rule.layer], o.rule.order)):
        if outcome.rule.rustflags and outcome.rule.rustflags not in fragments:
            fragments.append(outcome.rule.rustflags)
            sources.append(f"rule {outcome.rule.id}")
    for name in sorted(decisions):
        flags = decisions[name].rustflags
        if flags and flags not in fragments:
            fragments.append(flags)
            sources.append(f"plugin {decisions[name].source} ({name})")
    if not fragments:
        return
    ours = [flag for fragment in fragments for flag in fragment]
    var, why = rustflags_variable(facts, baseline)
    if why:
        ctx.warn(why)
    inherited = set_env.get(var, baseline.get(var, ""))
    if var == "CARGO_ENCODED_RUSTFLAGS":
        set_env[var] = ENCODED_SEPARATOR.join(([inherited] if inherited else []) + ours)
    else:
        inherited = inherited.strip()
        set_env[var] = " ".join(([inherited] if inherited else []) + ours)
    provenance[var] = Provenance("engine", "rustflags composed from " + ", ".join(sources) + (" after the caller's flags" if inherited else ""))

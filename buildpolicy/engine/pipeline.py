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

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.record import evolve, field, frozen, mutable
from buildpolicy.engine.compose import compose_env, compose_rustflags
from buildpolicy.engine.context import DecideContext
from buildpolicy.engine.envstate import STATE_VAR, encode_state, restore_baseline
from buildpolicy.engine.knobspecs import knob_specs
from buildpolicy.engine.options import unknown_plugin_tables
from buildpolicy.engine.rules import RuleOutcome, check_decide_values, evaluate_rules
from buildpolicy.errors import BuildpolicyError
from buildpolicy.filestate import stat_token
from buildpolicy.model import Decision, HandledWarning, KnobSpec, KnobValue, Provenance
from buildpolicy.paths import Paths, find_profile


@frozen
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
    # `env --hook` (the prompt hook): outside a project, unless the `hook_scope`
    # knob says `everywhere`, nothing is decided and the shell gets back what it had.
    hook: bool = False
    # How untrusted project/pack files are treated (buildpolicy.policy.trust):
    # "enforce" refuses, "check" reports each untrusted item as a problem
    # together with the run's other problems, "report" warns; both skip their
    # plugins and sensitive knobs. "ignore" does neither. None: enforce for
    # env/exec, check for check, ignore for test, report otherwise.
    trust: str | None = None
    paths: Paths | None = None  # directories to use instead of the environ's (policy tests)


TRUST_ENFORCED = ("env", "exec")
TRUST_IGNORED = ("test",)


def trust_mode(request: Request) -> str:
    """``enforce``, ``check``, ``report`` or ``ignore`` for ``request`` (see ``Request.trust``)."""
    if request.trust is not None:
        return request.trust
    if request.command in TRUST_ENFORCED:
        return "enforce"
    if request.command == "check":
        return "check"
    return "ignore" if request.command in TRUST_IGNORED else "report"


@mutable
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
    replay_blockers: list[str] = field(factory=list)  # why a warm `env` could not replay this
    # What the warm `env` replay records (buildpolicy.replay.record): every file and
    # directory read or listed with its stat token, and when the run started.
    input_files: list[tuple[str, str]] = field(factory=list)
    started_ns: int = 0

    def exec_env(self) -> dict[str, str]:
        """The full environment for a child process, with the env-state record of what
        this run changed: a ``buildpolicy`` run inside the child (a prompt in a shell
        ``exec`` started) then tells the user's own values from the ones decided here,
        which may come from a project's files (``RUSTUP_TOOLCHAIN`` naming a toolchain in
        the repository must not pass for the user's choice there)."""
        env = dict(self.baseline)
        for name in self.unset:
            env.pop(name, None)
        decided = {name: value for name, value in self.set_env.items() if name != STATE_VAR}
        env.update(decided)
        env[STATE_VAR] = encode_state(decided, self.unset, self.baseline)
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


@mutable
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
    # (or right after) reading it, for the warm `env` replay (buildpolicy.replay).
    input_files: list[tuple[str, str]]
    # The project directory when the user allowed the project as it is now, else None.
    allowed_root: str | None = None
    trust_findings: tuple[Any, ...] = ()  # every item of project/pack files that needs `allow`
    all_plugins_loaded: bool = True  # no team plugin left out (untrusted) and none failed to load
    # Problems found so far that do not stop the run from going on (``evaluate``
    # adds its own and raises them all together).
    problems: list[Any] = field(factory=list)


def prepare(request: Request, defer_problems: bool = False) -> Prepared:
    """Load the policies of every layer, check trust and register plugins.

    ``evaluate`` continues from here; ``buildpolicy set`` and ``buildpolicy
    test`` use it alone to learn the declared knobs and facts. Problems that
    leave the run able to go on (untrusted items under ``check``, tables named
    after no plugin, …) are raised together, or with ``defer_problems`` left in
    ``Prepared.problems`` for the caller to raise with its own.
    """
    from buildpolicy.data import policies_dir
    from buildpolicy.facts import known_fact_names
    from buildpolicy.policy.loader import load_policies
    from buildpolicy.engine.pluginhost import make_plugin_manager

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
        warn=warnings.append,
    )
    # Trust (DESIGN §9). Whether the user allowed the project matters for more than
    # untrusted items: probes may follow the project's own rust-toolchain file only
    # then (ProbeContext.allowed_root), and team plugins run only the bytes allowed.
    # Without a trust record this is one failed open; with one, the compiled files'
    # digests are compared, and team plugin modules hashed only when they changed.
    problems: list = []
    trusted = True
    verdict = None
    file_knobs = policy_set.knob_values
    declared = policy_set  # whose knob declarations apply
    findings = (*policy_set.trust_findings, *_knob_name_findings(policy_set, host))
    mode = trust_mode(request)
    if (policy_set.profile_path or findings) and mode != "ignore":
        from buildpolicy.policy import trust

        verdict = trust.check(policy_set, paths.state_dir)  # may refresh the record: stat it after
        if policy_set.profile_path:
            record = trust.record_path(paths.state_dir, policy_set.profile_path)
            input_files.append((str(record), stat_token(record)))
        if findings and not verdict.trusted:
            if mode == "enforce":
                raise trust.refusal(findings, policy_set, verdict)
            trusted = False
            if mode == "check":
                refusal = trust.refusal(findings, policy_set, verdict, refused=False)
                problems.extend([*refusal.messages, *refusal.notes, *refusal.helps])
            else:
                warnings.extend(trust.warnings_for(findings, verdict))
            untrusted = {(f.file, f.name) for f in findings if f.kind == "knob"}
            file_knobs = tuple(k for k in file_knobs if (k.provenance.file, k.name) not in untrusted)
            # Aliases and value aliases an untrusted file gives a sensitive knob are not applied either.
            aliased = {(f.file, f.name) for f in findings if f.kind == "knob-alias"}
            declared = evolve(policy_set, knob_declarations=tuple(
                d if (d.provenance.file, d.name) not in aliased else evolve(
                    d, fields=tuple(item for item in d.fields if item[0] not in ("aliases", "value_aliases")))
                for d in policy_set.knob_declarations))
    allowed_root = policy_set.project_root if verdict is not None and verdict.trusted else None
    plugin_paths = policy_set.plugin_paths if trusted else ()
    if plugin_paths or policy_set.disable_plugins:
        host = make_plugin_manager(
            cache_dir=paths.cache_dir,
            plugin_paths=[Path(p) for p in plugin_paths],
            # The digests `allow` recorded: team code is run from exactly those bytes
            # (None in "ignore" mode: policy tests run the project's code as it is).
            plugin_digests=None if verdict is None else verdict.digests,
            project_root=policy_set.project_root,
            disabled=policy_set.disable_plugins,
            extra_plugins=request.extra_plugins,
            entry_points=request.entry_points,
        )
        plugin_facts = {spec.name: spec for spec in host.fact_specs()}
    warnings.extend(host.load_errors)
    try:
        specs = knob_specs(host, declared)
    except BuildpolicyError as exc:
        raise BuildpolicyError(problems + exc.messages) from None
    prepared = Prepared(baseline, touched, paths, policy_set, host, plugin_facts, specs, tuple(file_knobs), warnings,
                        input_files, allowed_root, findings, trusted and not host.load_errors, problems)
    if problems and not defer_problems:
        raise BuildpolicyError(problems)
    return prepared


def _knob_name_findings(policy_set, host) -> list:
    """Project and pack rules setting a knob's environment name that is also a build
    variable (a declared alias such as ``CARGO_FAST_LINKER``), see ``trust.knob_name_findings``."""
    from buildpolicy.policy.buildvars import is_build_variable

    if not any(rule.layer in ("project", "pack") for rule in policy_set.rules):
        return []
    names = {alias: decl.name for decl in policy_set.knob_declarations
             for alias in decl.get("aliases", ()) if isinstance(alias, str) and is_build_variable(alias)}
    for spec in host.knob_specs():
        names.update((alias, spec.name) for alias in spec.aliases if is_build_variable(alias))
    if not names:
        return []
    from buildpolicy.policy.trust import knob_name_findings

    return knob_name_findings(policy_set.rules, names)


def evaluate(request: Request) -> Result:
    """Run the whole pipeline for ``request``; raise BuildpolicyError on user errors."""
    import time

    from buildpolicy.facts import FactStore, ProbeContext
    from buildpolicy.policy.knobs import resolve_knobs

    started_ns = time.time_ns()  # files changed after this are not trusted for a replay
    prepared = prepare(request, defer_problems=True)
    baseline, touched, paths = prepared.baseline, prepared.touched, prepared.paths
    policy_set, host, plugin_facts = prepared.policy_set, prepared.host, prepared.plugin_facts
    specs, warnings, problems = prepared.knob_specs, prepared.warnings, prepared.problems
    def warn_once(message: str) -> None:
        # Inherited environment garbage, ignored with a fallback: said once per change of
        # situation at the prompt and by exec (buildpolicy.output.said), never replayed.
        warnings.append(HandledWarning(message))

    # Every problem of the files is reported at once (`check` lists them all).
    try:
        knobs = resolve_knobs(specs.values(), prepared.file_knobs, baseline, request.cli_sets, warn_once)
    except BuildpolicyError as exc:
        problems += exc.messages
    for message in _unknown_knob_variables(specs, baseline, policy_set):
        warn_once(message)
    try:
        check_decide_values(policy_set.rules, specs)
    except BuildpolicyError as exc:
        problems += exc.messages
    if problems:
        raise BuildpolicyError(problems)

    probe_ctx = ProbeContext(
        cwd=request.cwd,
        environ=baseline,
        cargo_argv=request.cargo_argv,
        profile_flag=request.profile_flag,
        default_profile=policy_set.default_profile,
        project_root=Path(policy_set.project_root) if policy_set.project_root else None,
        allowed_root=prepared.allowed_root,
        cache_dir=paths.cache_dir / "probes",
    )
    facts = FactStore(probe_ctx, request.fact_overrides, hermetic=request.hermetic, extra_specs=plugin_facts)
    if request.hook and not _in_hook_scope(request, policy_set, knobs, prepared.input_files):
        return _outside_scope(request, prepared, knobs, facts, started_ns)
    from buildpolicy.engine.profiles import check_profile

    check_profile(request, policy_set, facts)  # `--profile relese` fails here as in cargo

    outcomes, rule_decisions, policy_decisions = evaluate_rules(policy_set.rules, knobs, facts)
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
    # A table no plugin reads is a typo or a misplaced setting (after deciding: a
    # plugin may name its table after its decision, or read another one). Not
    # knowable while some plugin is not loaded (untrusted, or failed).
    if prepared.all_plugins_loaded:
        tables = unknown_plugin_tables(policy_set, host, paths.cache_dir if request.entry_points else None,
                                       also_known={*decisions, *ctx.options_read})
        if tables:
            raise BuildpolicyError(tables)
    for name, (_value, rule_id) in sorted(policy_decisions.items()):
        if name not in decisions:
            ctx.warn(f"rule {rule_id} decides {name!r}, but no plugin makes a decision of that name "
                     f"(decisions: {', '.join(sorted(decisions))})")

    set_env, unset, provenance, overridden = compose_env(outcomes, decisions, facts, baseline, ctx, policy_set)
    compose_rustflags(outcomes, decisions, facts, baseline, set_env, provenance, ctx)

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
        replay_blockers=_replay_blockers(request, prepared, facts, ctx),
        input_files=prepared.input_files,
        started_ns=started_ns,
    )


def _unknown_knob_variables(specs, environ, policy_set) -> list[str]:
    """Warnings for ``BUILDPOLICY_<X>`` variables no knob reads; names the rules
    read as ``env.<NAME>`` facts are known (a team's own switch)."""
    from buildpolicy.policy.knobs import unknown_knob_variables

    if not any(name.startswith("BUILDPOLICY_") for name in environ):
        return []
    read = set()
    for rule in policy_set.rules:
        used = getattr(rule.when, "facts_used", ())
        read.update(name[len("env."):] for name in used if name.startswith("env.BUILDPOLICY_"))
        for entry in rule.env:
            read.update(part.partition("}")[0] for part in entry.value.split("${env.")[1:])
    return unknown_knob_variables(specs.values(), environ, read)


HOOK_SCOPE_KNOB = "hook_scope"  # declared by the built-in `prompt` plugin


def _in_hook_scope(request: Request, policy_set, knobs, input_files: list) -> bool:
    """Whether the prompt hook applies policy in ``request.cwd``: everywhere, or (the
    default ``hook_scope = project``) under a ``buildpolicy.toml`` or a ``Cargo.toml``.

    The manifests looked for join ``input_files``: one appearing or going away
    changes the answer, so a warm replay re-checks them.
    """
    from buildpolicy.paths import find_cargo_manifest

    scope = knobs.get(HOOK_SCOPE_KNOB)
    if scope is not None and scope.value == "everywhere":
        return True
    return policy_set.profile_path is not None or find_cargo_manifest(request.cwd, looked_at=input_files) is not None


def _outside_scope(request: Request, prepared: Prepared, knobs, facts, started_ns: int) -> Result:
    """The hook's result outside a project: every variable a previous ``env`` set or
    unset gets the caller's value back, and the env-state record goes away."""
    baseline = prepared.baseline
    set_env: dict[str, str] = {}
    unset: list[str] = []
    provenance: dict[str, Provenance] = {}
    for name, before in prepared.touched.items():
        if before is None:
            unset.append(name)
            provenance[name] = Provenance("engine", "outside a project: unset what a previous `env` set")
        else:
            set_env[name] = before
            provenance[name] = Provenance("inherited", "outside a project: restored the value a previous `env` replaced")
    if STATE_VAR in request.environ:
        unset.append(STATE_VAR)
        provenance[STATE_VAR] = Provenance("engine", "outside a project: nothing left to undo")
    ctx = DecideContext(
        facts=facts, knobs=knobs, environ=baseline, options=prepared.policy_set.options, policy_decisions={},
        cargo_argv=request.cargo_argv, command=request.command, feature_profiles=prepared.policy_set.feature_profiles,
        cache_dir=prepared.paths.cache_dir, state_dir=prepared.paths.state_dir, warnings=prepared.warnings,
    )
    return Result(
        profile=request.profile_flag or prepared.policy_set.default_profile,
        set_env=dict(sorted(set_env.items())), unset=sorted(unset), provenance=provenance, overridden={},
        decisions={}, knobs=knobs, knob_specs=prepared.knob_specs, rules=[], warnings=prepared.warnings,
        cargo_args=list(request.cargo_argv or ()), facts=facts, baseline=baseline, policy_set=prepared.policy_set,
        paths=prepared.paths, plugins=prepared.host, context=ctx,
        replay_blockers=_replay_blockers(request, prepared, facts, ctx), input_files=prepared.input_files,
        started_ns=started_ns,
    )


def _replay_blockers(request, prepared, facts, ctx) -> list[str]:
    """Why a warm ``env`` could not replay this run (empty: it can).

    Not replayable: runs with given facts or test plugins, plugin-declared facts,
    plugins that do not declare themselves replayable, plugins that opted out for
    this run (``ctx.not_replayable``), and plugins that failed to load or raised
    (whatever made them fail is not recorded).
    """
    reasons = []
    if request.fact_overrides or request.hermetic:
        reasons.append("facts are given (--facts or a policy test)")
    if request.extra_plugins or request.paths is not None:
        reasons.append("test plugins or directories are in use")
    reasons += prepared.host.not_replayable()
    reasons += ctx.replay_blockers
    if prepared.host.load_errors or prepared.host.warnings:
        reasons.append("a plugin failed to load or raised")
    blocker = facts.memo_blocker()
    if blocker:
        reasons.append(blocker)
    return reasons

"""The knobs of one run: declared by plugins, team knobs and rule knobs, with the
profile's aliases, value aliases and defaults applied and checked."""

from __future__ import annotations

from buildpolicy.record import evolve
from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import KnobSpec


def knob_specs(host, policy_set) -> dict[str, KnobSpec]:
    """Plugin knobs, team knobs and rule knobs, with the profile's aliases and value aliases applied."""
    from buildpolicy.policy.knobs import coerce

    specs = {spec.name: spec for spec in host.knob_specs()}
    declared_by_plugins = set(specs)
    errors = []
    for decl in policy_set.knob_declarations:
        spec = specs.get(decl.name)
        where = decl.where()
        if spec is not None and decl.name in declared_by_plugins:
            retyped = [key for key in ("type", "values", "minimum") if decl.get(key) is not None]
            if retyped:
                errors.append(f"{decl.where('key:' + retyped[0])}: [knobs.{decl.name}] cannot change {', '.join(retyped)}: knob {decl.name!r} is "
                              f"declared by {spec.declared_by}; a profile may add aliases, value_aliases, a default "
                              "and a description")
                continue
        if spec is None:
            kind = decl.get("type")
            if kind is None:
                if any(rule.knob == decl.name for rule in policy_set.rules):
                    from buildpolicy.policy.knobs import rule_knob_spec

                    spec = rule_knob_spec(decl.name, next(r.id for r in policy_set.rules if r.knob == decl.name))
                else:
                    from buildpolicy.errors import closest
                    from buildpolicy.model import KNOB_TYPES

                    close = closest(decl.name, declared_by_plugins)
                    errors.append(f"{where}: [knobs.{decl.name}] declares no `type` and no plugin declares knob {decl.name!r}"
                                  + (f" (did you mean [knobs.{close}]?)" if close else "")
                                  + f"; a team knob needs `type` ({', '.join(KNOB_TYPES)})")
                    continue
            else:
                if kind == "enum" and not decl.get("values"):
                    errors.append(f"{decl.where('key:type')}: enum knob {decl.name!r} needs `values` (the allowed values, "
                                  "e.g. values = [\"on\", \"off\"])")
                    continue
                spec = KnobSpec(
                    name=decl.name,
                    type=kind,
                    values=tuple(decl.get("values", ())),
                    minimum=decl.get("minimum"),
                    description=decl.get("description", ""),
                    declared_by=f"{decl.provenance.layer} {decl.provenance.file}",
                )
        specs[decl.name] = evolve(
            spec,
            aliases=tuple(dict.fromkeys((*spec.aliases, *decl.get("aliases", ())))),
            value_aliases=(*spec.value_aliases, *sorted(decl.get("value_aliases", {}).items())),
        )
    for rule in policy_set.rules:
        if rule.knob and rule.knob not in specs:
            from buildpolicy.policy.knobs import rule_knob_spec

            specs[rule.knob] = rule_knob_spec(rule.knob, rule.id)
    for decl in policy_set.knob_declarations:  # defaults are checked with the declarations
        spec = specs.get(decl.name)
        if spec is not None and decl.get("default") is not None:
            try:
                coerce(spec, decl.get("default"))
            except ValueError as exc:
                errors.append(f"{decl.where('value:default')}: knob {decl.name!r}: bad default "
                              f"{decl.get('default')!r}; allowed: {exc}")
    errors += _alias_collisions(specs, policy_set.knob_declarations)
    if errors:
        raise BuildpolicyError(errors)
    return specs


def _alias_collisions(specs: dict[str, KnobSpec], declarations=()) -> list[str]:
    """An environment name may set one knob only: two knobs sharing an alias, or an
    alias that is another knob's ``BUILDPOLICY_<KNOB>``, would make a value go astray.

    Each collision is reported at the alias a file declared (``file:line:col``
    of the string in ``aliases``), when one did."""
    declared_at = {(decl.name, alias): decl.where(f"alias:{alias}")
                   for decl in declarations for alias in decl.get("aliases", ()) if isinstance(alias, str)}
    owner: dict[str, str] = {}
    errors = []
    for name in sorted(specs):
        for var in specs[name].env_names:
            if var in owner and owner[var] != name:
                where = declared_at.get((name, var)) or declared_at.get((owner[var], var))
                errors.append((f"{where}: " if where else "")
                              + f"environment variable {var} would set both knob {owner[var]!r} and knob {name!r}: "
                              "give each knob its own aliases")
            owner.setdefault(var, name)
    return errors

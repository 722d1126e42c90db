"""Plugin option tables: a table of a profile or policy file that is not one of
buildpolicy's own (``[[rule]]``, ``[knobs]``, ``[feature_profiles]``) holds the
options of the plugin of that name (``[linker] skip_profiles = [...]``), or of
a table a plugin reads by another name (its decision's, through ``ctx.option``).

A table named after no plugin would be ignored without a word, so a typo
(``[linkr]``) or a misplaced setting (``[buildpolicy] default_profile = ...``)
is an error at ``file:line:col`` with a did-you-mean.
"""

from __future__ import annotations

from pathlib import Path

from buildpolicy.errors import Diagnostic, closest


def known_plugin_names(policy_set, host, entry_point_cache: Path | None, also_known=()) -> set[str]:
    """Every name a table may have.

    The registered plugins, plus those this run does not load: disabled ones
    (``disable_plugins``), team-local modules (``plugin_paths``, loaded only
    once allowed) and, with ``entry_point_cache``, every installed entry point
    (one that failed to load is reported as such, not as a typo); plus
    ``also_known``: the run's decisions and the tables plugins asked for.
    """
    names = set(host.plugin_names()) | set(policy_set.disable_plugins) | set(also_known)
    names |= {Path(path).stem for path in policy_set.plugin_paths}
    if entry_point_cache is not None:
        from buildpolicy.engine.pluginhost import discover_entry_points

        names |= {name for name, _value, _dist in discover_entry_points(entry_point_cache)}
    return names


def unknown_plugin_tables(policy_set, host, entry_point_cache: Path | None, also_known=()) -> list[Diagnostic]:
    """A diagnostic for every table of the policy files that names no plugin, no
    decision and no table a plugin asked for (``also_known``)."""
    tables = policy_set.plugin_tables
    if not tables:
        return []
    quick = set(host.plugin_names()) | set(policy_set.disable_plugins) | set(also_known)
    if all(name in quick for name, *_ in tables):
        return []
    from buildpolicy.policy.loader import PROFILE_KEYS

    known = known_plugin_names(policy_set, host, entry_point_cache, also_known)
    problems = []
    for name, file, line, col in tables:
        if name in known:
            continue
        options = policy_set.options.get(name, {})
        misplaced = [key for key in options if key in PROFILE_KEYS]
        close = closest(name, known)
        if close:
            hint = f" (did you mean [{close}]?)"
        elif misplaced:
            hint = (f" (`{misplaced[0]}` is a top-level key of buildpolicy.toml: write it above the first table, "
                    "without a table header)")
        else:
            hint = ""
        problems.append(Diagnostic(
            file, line, col,
            f"[{name}] is not the table of any plugin{hint}; a table other than [[rule]] and [knobs] holds the options "
            f"of the plugin of its name, and the plugins and decisions here are: {', '.join(sorted(known)) or 'none'}",
        ))
    return problems

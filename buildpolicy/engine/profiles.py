"""Is the cargo profile a run decides for one cargo has? (``--profile``, ``default_profile``)

A profile the user names to buildpolicy (``--profile``, or ``default_profile`` in
the profile file) that the workspace does not define would make cargo fail
(``error: profile `relese` is not defined``) while buildpolicy happily decided
for it: an error (exit 2) here too, with the profiles there are. A profile in a
cargo command line is left to cargo, which says so itself.
"""

from __future__ import annotations

from buildpolicy.errors import BuildpolicyError, Diagnostic, closest

# Cargo's built-in profiles (`doc` is still accepted by cargo for `cargo doc`).
BUILTIN_PROFILES = ("dev", "release", "test", "bench", "doc")


def check_profile(request, policy_set, facts) -> None:
    """Raise BuildpolicyError when the profile named by ``--profile`` or ``default_profile``
    is not one of the workspace's: the built-ins and ``[profile.*]`` of its Cargo.toml
    and cargo configuration. Nothing is checked without a Cargo.toml (cargo would stop
    at that first), with a cargo argv choosing the profile, or with given facts."""
    from buildpolicy.facts.cargo import parse_cargo_argv

    if request.hermetic or (request.fact_overrides and any(
            key.startswith("cargo.") for key in request.fact_overrides)):
        return
    if request.cargo_argv and parse_cargo_argv(request.cargo_argv).profile is not None:
        return
    profile = request.profile_flag or policy_set.default_profile
    if profile in BUILTIN_PROFILES:
        return
    defined = _defined_profiles(facts)
    if defined is None or profile in defined:
        return
    known = sorted({*BUILTIN_PROFILES, *defined})
    close = closest(profile, known)
    hint = f"did you mean `{close}`? " if close else ""
    message = (f"profile `{profile}` is not defined ({hint}profiles here: {', '.join(known)}; "
               "a custom one is a [profile.<name>] table of Cargo.toml with `inherits`)")
    if request.profile_flag:
        raise BuildpolicyError(f"--profile {profile}: {message}")
    line, col = _default_profile_position(policy_set.profile_path)
    raise BuildpolicyError(Diagnostic(policy_set.profile_path, line, col, f"default_profile: {message}"))


def _defined_profiles(facts) -> set[str] | None:
    """The names of the ``[profile.*]`` tables cargo reads here, or None without a
    Cargo.toml or when it cannot be read (cargo will say what is wrong)."""
    from buildpolicy.facts.cargo_profiles import find_manifest, load_profiles
    from buildpolicy.facts.store import ProbeSession
    from buildpolicy.facts.unknown import FactUnknown

    ctx = facts.ctx
    if find_manifest(ctx.cwd) is None:
        return None
    session = ProbeSession(facts, "cargo.profile_inherits")
    try:
        profiles, _build = session.shared("cargo.profiles", lambda: load_profiles(session))
    except FactUnknown:
        return None
    facts.get("cargo.profile_inherits")  # the replay re-checks the profile tables through it
    return set(profiles)


def _default_profile_position(profile_path) -> tuple[int | None, int | None]:
    """Line and column of ``default_profile``'s value in the profile file (for the message)."""
    from pathlib import Path

    from buildpolicy.policy.tomlpos import parse_toml

    try:
        doc = parse_toml(Path(profile_path), Path(profile_path).read_text(encoding="utf-8"))
        return doc.value_pos(("default_profile",)) or (None, None)
    except Exception:  # noqa: BLE001 - only the position of a message is at stake
        return None, None

"""Facts read from the caller's environment: ``ci`` and ``env.<NAME>``."""

from __future__ import annotations

from buildpolicy.facts.unknown import FactUnknown

FALSE_VALUES = ("", "0", "false", "no", "off")


def probe_ci(s) -> bool:
    """The ``ci`` fact: ``CI`` is set to something other than a false value."""
    value = s.ctx.environ.get("CI")
    return value is not None and value.strip().lower() not in FALSE_VALUES


def probe_env(s) -> str:
    """The ``env.<NAME>`` fact: the variable's value, unknown when unset."""
    name = s.name.removeprefix("env.")
    value = s.ctx.environ.get(name)
    if value is None:
        raise FactUnknown(f"{name} is not set")
    return value

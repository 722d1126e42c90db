"""The ``zero_tests`` decision: fail a filtered ``cargo test`` that ran no test.

The plugin declares the knobs and reports whether ``exec`` will guard this
command; ``exec`` watches the output (``buildpolicy.run.testguard``).
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True


@hookimpl
def buildpolicy_declare_knobs():
    """Declare ``zero_tests`` (fail|allow) and ``zero_tests_exit`` (the exit code, 97)."""
    return [
        KnobSpec("zero_tests", "enum", default="fail", values=("fail", "allow"),
                 description="exec -- cargo test FILTER whose filter matched no test: fail (exit zero_tests_exit) "
                             "or allow"),
        KnobSpec("zero_tests_exit", "int", default=97, minimum=1,
                 description="exit status of a filtered cargo test that ran no test (1-255)",
                 check=lambda value: None if value <= 255 else "an exit status is at most 255"),
    ]


@hookimpl
def buildpolicy_decide(ctx):
    """``on:exit=N`` when exec guards this command, else why not."""
    if ctx.cargo_argv is None or ctx.fact("cargo.command") != "test":
        return Decision("zero_tests", None, "not-applicable:not-cargo-test", "only `cargo test` runs tests by a filter")
    from buildpolicy.run.testguard import test_filters

    filters = test_filters(ctx.cargo_argv)
    if not filters:
        return Decision("zero_tests", None, "not-applicable:no-filter", "no test filter: every test runs")
    if ctx.knob("zero_tests") == "allow":
        return Decision("zero_tests", None, "disabled-by-knob", f"knob zero_tests = allow ({ctx.knob_source('zero_tests')})")
    code = ctx.knob("zero_tests_exit")
    return Decision("zero_tests", code, f"on:exit={code}",
                    f"`exec` exits {code} if the filter {' '.join(filters)!r} matches no test")

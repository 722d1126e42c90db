"""The wrapper's guards through real cargo runs (issue 14.5): a ``cargo test`` filter that
matches no test fails, and an ``exec`` inside an ``exec`` neither takes the gate twice nor
wraps the build twice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import write
from tests import test_e2e_cargo

e2e = test_e2e_cargo.e2e  # the fixture: a copy of a tiny crate and a runner of real cargo builds
require = test_e2e_cargo.require

TESTS = """
#[cfg(test)]
mod tests {
    #[test]
    fn parses_header() {
        assert_eq!(super::greeting().len(), 18);
    }

    #[test]
    fn shouts_when_loud() {
        assert!(super::greeting().starts_with('h') || cfg!(feature = "loud"));
    }
}
"""


def _log(e2e) -> list[dict]:
    path = Path(e2e.environ["XDG_STATE_HOME"]) / "buildpolicy" / "actions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_filter_that_matches_no_test_fails(e2e):
    (e2e.root / "src" / "lib.rs").write_text((e2e.root / "src" / "lib.rs").read_text() + TESTS)
    missed = e2e("exec", "--", "cargo", "test", "parse_headr", check=False)
    assert missed.returncode == 97, missed.stderr
    assert "running 0 tests" in missed.stdout  # cargo's own output still reaches the caller
    assert "the cargo test filter matched no test" in missed.stderr and "zero_tests=allow" in missed.stderr
    # One match is "running 1 test", singular: the filter matched (the bash wrapper's grep missed this).
    one = e2e("exec", "--", "cargo", "test", "parses_header")
    assert "running 1 test\n" in one.stdout and "test tests::parses_header ... ok" in one.stdout
    # A filter after `--` is the test binaries' own: guarded too, with the code of the knob.
    after = e2e("exec", "--set", "zero_tests_exit=42", "--", "cargo", "test", "--", "--test-threads", "1", "nothing_here",
                check=False)
    assert after.returncode == 42, after.stderr
    # No filter, or the guard allowed: a run of zero tests is what was asked for.
    assert e2e("exec", "--", "cargo", "test", "--lib").returncode == 0
    assert e2e("exec", "--set", "zero_tests=allow", "--", "cargo", "test", "parse_headr").returncode == 0
    statuses = [entry["decisions"]["zero_tests"] for entry in _log(e2e)]
    assert statuses == ["on:exit=97", "on:exit=97", "on:exit=42", "not-applicable:no-filter", "disabled-by-knob"]
    assert [entry["exit_code"] for entry in _log(e2e)] == [97, 0, 42, 0, 0]
    # A failing test keeps its own status: the guard only turns a success into a failure.
    write(e2e.root / "tests" / "broken.rs", "#[test]\nfn broken() { panic!(\"no\"); }\n")
    assert e2e("exec", "--", "cargo", "test", "broken", check=False).returncode == 101


NESTED_BUILD_RS = """
use std::process::Command;

fn main() {
    let report = std::env::var("NESTED_REPORT").unwrap();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default().replace('\\x1f', " ");
    std::fs::write(format!("{report}.outer"), flags).unwrap();
    let out = std::env::var("OUT_DIR").unwrap();
    let status = Command::new(std::env::var("BP_PYTHON").unwrap())
        .args(["-m", "buildpolicy", "exec", "--", "cargo", "check", "--manifest-path",
               &std::env::var("INNER_MANIFEST").unwrap(), "--target-dir", &format!("{out}/inner-target")])
        .status()
        .unwrap();
    assert!(status.success(), "the nested exec failed: {status}");
    println!("cargo:rerun-if-changed=build.rs");
}
"""

INNER_BUILD_RS = """
fn main() {
    let report = std::env::var("NESTED_REPORT").unwrap();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default().replace('\\x1f', " ");
    std::fs::write(format!("{report}.inner"), flags).unwrap();
}
"""


def test_a_nested_exec_shares_the_gate_and_wraps_nothing_twice(e2e, tmp_path):
    """A build script calling ``buildpolicy exec -- cargo check`` again: the nested exec
    inherits the gate, shares the governor, and its build gets the same flags, not the
    outer exec's flags plus its own once more."""
    require("clang", "the Debian package clang", e2e.environ["PATH"])
    require("mold", "the Debian package mold", e2e.environ["PATH"])
    write(e2e.root / "build.rs", NESTED_BUILD_RS)
    # A team rule adding flags: the nested exec finds them in cargo's CARGO_ENCODED_RUSTFLAGS.
    write(e2e.root / "buildpolicy.toml", 'policies = ["policies"]\n')
    write(e2e.root / "policies" / "flags.toml", '[[rule]]\nid = "debuginfo"\nrustflags = ["-C", "debuginfo=1"]\n')
    inner = tmp_path / "inner"
    write(inner / "Cargo.toml", '[package]\nname = "inner"\nversion = "0.1.0"\nedition = "2021"\n\n[workspace]\n')
    write(inner / "src" / "lib.rs", "pub fn inner() {}\n")
    write(inner / "build.rs", INNER_BUILD_RS)
    report = tmp_path / "flags"
    env = {"NESTED_REPORT": str(report), "BP_PYTHON": sys.executable, "INNER_MANIFEST": str(inner / "Cargo.toml")}
    e2e("exec", "--", "cargo", "build", env=env)
    outer_flags = report.with_suffix(".outer").read_text()
    assert "-C debuginfo=1" in outer_flags and "-C link-arg=-fuse-ld=mold" in outer_flags
    assert report.with_suffix(".inner").read_text() == outer_flags  # not "… -fuse-ld=mold … -fuse-ld=mold"
    nested, outer = _log(e2e)  # the nested exec ends first
    assert outer["decisions"]["gate"] == "acquired" and nested["decisions"]["gate"] == "inherited"
    assert nested["decisions"]["governor"] == "not-applicable:nested"

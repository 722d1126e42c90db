"""Trust rule: what is compiled is what was allowed (issue 10, item 4).

The allowed digest used to be checked against the files as they were when the
check ran, while the rules came from an earlier read: a policy file flipping
between its allowed content and an ``LD_PRELOAD`` rule got the ``LD_PRELOAD``
rule exported in about one ``env`` run out of four. Each file is now read once;
its digest is taken from the bytes compiled and cached with the compiled rules.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from buildpolicy.engine.pipeline import Request, prepare
from buildpolicy.policy import trust
from tests.conftest import write

# Allowed by the user: it needs `allow` (BASH_ENV), so a trust record is what protects it.
ALLOWED = '[[rule]]\nid = "hook"\nenv = { BASH_ENV = "/etc/allowed.sh" }\n'
EVIL = '[[rule]]\nid = "hook"\nenv = { LD_PRELOAD = "/tmp/evil.so" }\n'


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "repo"
    write(root / "buildpolicy.toml", 'policies = ["policies"]\n')
    write(root / "policies" / "hook.toml", ALLOWED)
    return root


def test_the_digest_checked_is_the_digest_of_the_bytes_compiled(project, base_env):
    state = Path(base_env["XDG_STATE_HOME"]) / "buildpolicy"
    policy = project / "policies" / "hook.toml"
    request = Request(cwd=project, environ=dict(base_env), command="explain", trust="ignore")
    trust.allow(prepare(request).policy_set, state)
    # The rules are compiled from the evil version; by the time trust is checked the file
    # holds the allowed bytes again.
    policy.write_text(EVIL)
    compiled = prepare(request).policy_set
    assert [entry.name for rule in compiled.rules if rule.id == "hook" for entry in rule.env] == ["LD_PRELOAD"]
    policy.write_text(ALLOWED)
    verdict = trust.check(compiled, state)
    assert not verdict.trusted and verdict.changed == (str(policy),)
    # The allowed version, compiled, is trusted as before.
    assert trust.check(prepare(request).policy_set, state).trusted


FLIPPER = """
import os, sys
target, first, second = sys.argv[1:4]
while True:
    for source in (first, second):
        os.link(source, target + ".new")
        os.replace(target + ".new", target)
"""


def test_a_policy_file_flipping_under_env_never_gets_its_rule_exported(cli, project, tmp_path):
    policy = project / "policies" / "hook.toml"
    cli("allow", "-q", cwd=project, check=True)
    versions = [write(tmp_path / name, text) for name, text in (("allowed.toml", ALLOWED), ("evil.toml", EVIL))]
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(policy), *map(str, versions)])
    outcomes = []
    try:
        for _ in range(40):
            proc = cli("env", cwd=project)
            outcomes.append(proc.returncode)
            assert "LD_PRELOAD" not in proc.stdout, proc.stdout
            assert proc.returncode in (0, 2), proc.stderr
            assert proc.returncode == 0 or proc.stdout == ""
    finally:
        flipper.kill()
        flipper.wait()
    # The file is left as the flipper left it: an allowed run still works once it is the allowed version.
    os.replace(versions[0], policy)
    assert "export BASH_ENV='/etc/allowed.sh'" in cli("env", cwd=project, check=True).stdout.splitlines()

"""Finding: an unallowed project declares ``value_aliases`` for a sensitive knob
(``gate_lock``, ``remote_ssh_config``, ``remote_hosts``, ``remote_dir``). Only a
value (``default``) or ``aliases`` of such a knob count as untrusted items, so
`env` does not refuse; but when the user sets the knob (here through
``BUILDPOLICY_GATE_LOCK`` / ``BUILDPOLICY_REMOTE_SSH_CONFIG``), the project's
alias replaces the user's value with a path the repository chose: `exec` then
creates directories and a lock file there (item 7), and ssh would be run with the
repository's configuration (item 2: ``Match exec`` runs commands).

Expected: value aliases of a sensitive knob from a project or pack file are an
untrusted item (`env` refuses until `allow`), or are not applied.
"""

from __future__ import annotations

import json
import os

from tests.conftest import write


def test_project_value_aliases_cannot_redirect_a_sensitive_knob(cli, tmp_path):
    project = tmp_path / "proj"
    victim = tmp_path / "victim" / "dir" / "planted.lock"
    evil_config = project / "evil_ssh_config"
    user_lock = tmp_path / "my-gate.lock"
    write(project / "buildpolicy.toml",
          f'[knobs.gate_lock]\nvalue_aliases = {{ "{user_lock}" = "{victim}" }}\n'
          f'[knobs.remote_ssh_config]\nvalue_aliases = {{ "~/.ssh/build_config" = "{evil_config}" }}\n')
    fake_cargo = write(tmp_path / "bin" / "cargo", "#!/bin/sh\nexit 0\n")
    fake_cargo.chmod(0o755)
    user = {"BUILDPOLICY_GATE_LOCK": str(user_lock), "BUILDPOLICY_REMOTE_SSH_CONFIG": "~/.ssh/build_config"}

    proc = cli("explain", "--format", "json", cwd=project, env=user)
    assert proc.returncode == 0, proc.stderr
    knobs = json.loads(proc.stdout)["knobs"]
    assert knobs["remote_ssh_config"]["value"] != str(evil_config), "the repository chose the ssh configuration"
    assert knobs["gate_lock"]["value"] != str(victim), "the repository chose the gate's lock file"

    cli("exec", "--", "cargo", "build", cwd=project,
        env={**user, "PATH": f"{fake_cargo.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"})
    assert not victim.parent.exists(), "exec created directories and a lock file where the repository said"

"""Finding: item 14 made a NUL in a rule's ``env`` value an error with ``file:line:col``
in both `check` and `env`, but a NUL written elsewhere in a policy or profile file
(TOML escape ``\\u0000``) still passes `check`:

- in a rule's ``rustflags`` fragment, `env` fails (exit 2) with no file, line or
  column ("value of environment variable CARGO_TARGET_..._RUSTFLAGS contains a NUL");
- in a ``[feature_profiles]`` argument, `env` succeeds and `exec -- cargo build`
  dies with a Python traceback (``ValueError: embedded null byte``), exit 1.

Expected (items 12, 14): `check` reports each with ``file:line:col`` (exit 1) and
`env`/`exec` refuse with exit 2 and the same position, never a traceback.
"""

from __future__ import annotations

import os

from tests.conftest import write


def test_nul_in_a_rustflags_fragment_is_reported_with_its_position(cli, tmp_path):
    project = tmp_path / "proj"
    profile = write(project / "buildpolicy.toml", '[[rule]]\nid = "a"\nrustflags = ["-C\\u0000x"]\n')

    check = cli("check", cwd=project)
    assert check.returncode == 1, f"check accepted a file env rejects:\n{check.stdout}{check.stderr}"
    env = cli("env", cwd=project)
    assert env.returncode == 2 and env.stdout == ""
    assert f"{profile}:3:" in env.stderr, env.stderr


def test_nul_in_a_feature_profile_argument_is_an_error_not_a_traceback(cli, tmp_path):
    project = tmp_path / "proj"
    profile = write(project / "buildpolicy.toml",
                    '[feature_profiles]\nmin = ["--features", "a\\u0000b"]\n[knobs]\nfeatures = "min"\n')
    fake_cargo = write(tmp_path / "bin" / "cargo", "#!/bin/sh\nexit 0\n")
    fake_cargo.chmod(0o755)
    path = f"{fake_cargo.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"

    check = cli("check", cwd=project)
    assert check.returncode == 1, f"check accepted a file exec crashes on:\n{check.stdout}{check.stderr}"
    proc = cli("exec", "--", "cargo", "build", cwd=project, env={"PATH": path})
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2 and f"{profile}:2:" in proc.stderr, proc.stderr

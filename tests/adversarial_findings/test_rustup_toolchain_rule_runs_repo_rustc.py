"""Finding: a project rule sets RUSTUP_TOOLCHAIN (a "build variable", no `allow` needed)
to a toolchain directory inside the clone; in a shell started by `buildpolicy exec`
the variable is inherited, and the next `buildpolicy env` (the prompt hook) or
`buildpolicy facts` treats it as the *user's* choice and runs the repository's
rustc while probing ``rust.version``.

Item 1 says buildpolicy must never execute a binary that an unallowed file chose;
item 2 says variables a project sets must not redirect buildpolicy itself. The
env-state record undoes this at a plain prompt, but `exec` hands the child no
record, so nested runs believe the project's value.

Expected: nothing from the clone runs; ``rust.version`` is unknown (or probed
with the user's own toolchain choice), and explain says why.
"""

from __future__ import annotations

import sys
from pathlib import Path


from tests.conftest import write
from tests.rustup import REAL_PROXY_DIR, REAL_RUSTUP_HOME, needs_rustup

pytestmark = needs_rustup


def test_project_rustup_toolchain_is_not_run_by_a_nested_buildpolicy(cli, base_env, tmp_path):
    clone = tmp_path / "clone"
    marker = tmp_path / "evil-ran"
    rustc = write(clone / "evil" / "bin" / "rustc", f'#!/bin/sh\ntouch "{marker}"\necho "rustc 9.9.9 (fake)"\n')
    rustc.chmod(0o755)
    write(clone / "Cargo.toml", '[package]\nname = "clone"\nversion = "0.1.0"\n')
    # Only a build variable: env does not refuse, no `allow` is asked for.
    write(clone / "buildpolicy.toml",
          f'[[rule]]\nid = "toolchain"\nenv = {{ RUSTUP_TOOLCHAIN = "{clone / "evil"}" }}\n')
    env = dict(base_env, RUSTUP_HOME=str(REAL_RUSTUP_HOME), PATH=f"{REAL_PROXY_DIR}:{base_env['PATH']}")

    # A trusted user-layer rule that looks at rust.version: env probes it at every prompt.
    write(Path(env["XDG_CONFIG_HOME"]) / "buildpolicy" / "version.toml",
          '[[rule]]\nid = "new-rustc"\nwhen = "rust.version == \'1.2.3\'"\nenv = { CARGO_TERM_VERBOSE = "true" }\n')
    # The plain prompt is safe: env's own state record undoes the project's value.
    assert cli("env", cwd=clone, env=env).returncode == 0
    assert not marker.exists()

    # What the prompt hook does inside a shell that `buildpolicy exec -- bash` started.
    inner = f"{sys.executable} -m buildpolicy env >/dev/null"
    proc = cli("exec", "--", "sh", "-c", inner, cwd=clone, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "a nested `buildpolicy env` ran the rustc the clone chose via RUSTUP_TOOLCHAIN"

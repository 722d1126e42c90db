"""Finding: a rust-toolchain file counts as trusted when it lies anywhere under an
allowed project's directory (``toolchain_file_trusted``: a path-prefix test on
``allowed_root``). `allow` never hashed that file, so a repository cloned (or a
submodule checked out) *below* an allowed project (``~/work/buildpolicy.toml``
allowed, ``~/work/clone`` from elsewhere with no profile of its own) gets its
``[toolchain] path = "evil"`` rustc run at the prompt (item 1), as does an edit of
the project's own rust-toolchain.toml pulled after `allow`.

Expected: only a rust-toolchain file that `allow` vouched for (hashed with the
project's files), or at least one in the allowed project's own directory rather
than in a nested repository, may select a path toolchain; otherwise
``rust.version`` is unknown with the reason.
"""

from __future__ import annotations

from pathlib import Path


from tests.conftest import write
from tests.rustup import REAL_PROXY_DIR, REAL_RUSTUP_HOME, needs_rustup

pytestmark = needs_rustup


def test_a_clone_below_an_allowed_project_cannot_pick_its_own_rustc(cli, base_env, tmp_path):
    work = tmp_path / "work"
    write(work / "buildpolicy.toml", 'default_profile = "dev"\n')  # the project the user allowed
    clone = work / "clone"  # cloned later, from someone else
    marker = tmp_path / "evil-ran"
    write(clone / "evil" / "bin" / "rustc", f'#!/bin/sh\ntouch "{marker}"\necho "rustc 9.9.9 (fake)"\n').chmod(0o755)
    write(clone / "rust-toolchain.toml", '[toolchain]\npath = "evil"\n')
    write(clone / "Cargo.toml", '[package]\nname = "clone"\nversion = "0.1.0"\n')
    env = dict(base_env, RUSTUP_HOME=str(REAL_RUSTUP_HOME), PATH=f"{REAL_PROXY_DIR}:{base_env['PATH']}")
    write(Path(env["XDG_CONFIG_HOME"]) / "buildpolicy" / "version.toml",
          '[[rule]]\nid = "new-rustc"\nwhen = "rust.version == \'1.2.3\'"\nenv = { CARGO_TERM_VERBOSE = "true" }\n')

    cli("allow", cwd=work, env=env, check=True)
    proc = cli("env", cwd=clone, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "the nested clone's rust-toolchain.toml ran its own rustc at the prompt"

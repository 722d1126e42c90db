"""The ``git_meta`` decision (issue 14.4): the commit a binary is built from, exported in
lockstep with HEAD, cheap at the prompt, and never in anything cargo or sccache
fingerprint for every crate.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write
from tests import test_e2e_cargo
from tests.test_replay import run_env

e2e = test_e2e_cargo.e2e  # the fixture: a copy of a tiny crate and a runner of real cargo builds

GIT = ["git", "-c", "user.email=dev@example.com", "-c", "user.name=dev"]


def commit(repo: Path, message: str, date: str = "2026-11-30T10:00:00+01:00") -> str:
    """A new commit of everything in ``repo`` with a fixed committer date; its short hash."""
    env = dict(os.environ, GIT_COMMITTER_DATE=date, GIT_AUTHOR_DATE=date)
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "--allow-empty", "-m", message], check=True, env=env)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=7", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    write(root / "Cargo.toml", '[package]\nname = "demo"\nversion = "0.1.0"\n')
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return root


def decision(cli, cwd, *sets, env=None) -> dict:
    args = [arg for knob in ("git_meta=on", *sets) for arg in ("--set", knob)]
    report = json.loads(cli("explain", "--format", "json", *args, cwd=cwd, env=env, check=True).stdout)
    return {"status": report["decisions"]["git_meta"]["status"], "env": report["env"], "unset": report["unset"]}


def test_statuses(cli, repo, tmp_path, base_env):
    off = json.loads(cli("explain", "--format", "json", cwd=repo, check=True).stdout)
    assert off["decisions"]["git_meta"]["status"] == "disabled"  # off by default
    assert not any(name.startswith("BUILD_GIT") for name in off["env"])
    assert decision(cli, repo)["status"] == "no-head"  # a repository without a commit
    assert decision(cli, tmp_path)["status"] == "no-head"  # no repository at all
    head = commit(repo, "first")
    got = decision(cli, repo, "git_meta_describe_var=BUILD_GIT_DESCRIBE", "git_meta_dirty_var=BUILD_GIT_DIRTY")
    assert got["status"] == f"hash={head}"
    assert got["env"]["BUILD_GIT_HASH"] == head
    assert got["env"]["BUILD_GIT_DATE"] == "2026-11-30 10:00:00 +0100"
    assert got["env"]["BUILD_GIT_DESCRIBE"] == head and got["env"]["BUILD_GIT_DIRTY"] == "false"
    subprocess.run([*GIT, "-C", str(repo), "tag", "v1.2.0"], check=True)
    write(repo / "src" / "new.rs", "")
    got = decision(cli, repo, "git_meta_describe_var=BUILD_GIT_DESCRIBE", "git_meta_dirty_var=BUILD_GIT_DIRTY")
    assert got["env"]["BUILD_GIT_DESCRIBE"] == "v1.2.0" and got["env"]["BUILD_GIT_DIRTY"] == "true"
    # A release pipeline's own value wins.
    assert decision(cli, repo, env={"BUILD_GIT_HASH": "release-7"})["status"] == "external:release-7"
    # No git on PATH (HEAD could be read from the files, but the date could not).
    no_git = tmp_path / "bin-without-git"
    no_git.mkdir()
    os.symlink(sys.executable, no_git / "python3")
    assert decision(cli, repo, env={"PATH": str(no_git)})["status"] == "git-not-found"


@pytest.mark.parametrize("name", ["CARGO_PKG_GIT_HASH", "RUSTFLAGS", "RUSTC_WRAPPER", "SCCACHE_X", "1BAD", "A-B"])
def test_variable_names_cargo_or_sccache_fingerprint_are_refused(cli, repo, name):
    proc = cli("env", "--set", "git_meta=on", "--set", f"git_meta_hash_var={name}", cwd=repo)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "git_meta_hash_var" in proc.stderr


def test_a_repositorys_variable_names_need_allow(cli, repo):
    commit(repo, "first")
    write(repo / "buildpolicy.toml", '[knobs]\ngit_meta = "on"\ngit_meta_hash_var = "BASH_ENV"\n')
    before = json.loads(cli("env", "--format", "json", cwd=repo).stdout or '{"set": {}}')
    assert "BASH_ENV" not in before["set"]
    cli("allow", cwd=repo, check=True)
    assert "BASH_ENV" in json.loads(cli("env", "--format", "json", cwd=repo, check=True).stdout)["set"]


def test_a_bare_repository_committed_in_the_clone_runs_nothing(cli, tmp_path):
    """A clone whose subdirectory is laid out as a bare repository with a promisor remote:
    git left to discover a repository from there would take that one, miss HEAD's commit and
    run its ``uploadpack`` command to fetch it, at every prompt, before any ``allow``."""
    src = tmp_path / "src"
    subprocess.run(["git", "init", "-q", "-b", "main", str(src)], check=True)
    write(src / "buildpolicy.toml", 'policies = []\n[knobs]\ngit_meta = "on"\n')
    marker = tmp_path / "PWNED"
    write(src / "sub" / "HEAD", "ref: refs/heads/main\n")
    write(src / "sub" / "config", "[core]\n\trepositoryformatversion = 1\n\tbare = true\n"
          "[extensions]\n\tpartialClone = origin\n"
          f'[remote "origin"]\n\tpromisor = true\n\turl = {src}\n\tuploadpack = touch {marker}; false\n')
    write(src / "sub" / "objects" / ".keep", "")
    write(src / "sub" / "refs" / "heads" / ".keep", "")
    head = commit(src, "first")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(src), str(clone)], check=True)
    # Turned on by the repository: refused until allow, and nothing runs.
    refused = cli("env", cwd=clone / "sub")
    assert refused.returncode == 2 and "knob git_meta is set here" in refused.stderr
    assert not marker.exists()
    # Allowed: git runs, on the clone's own repository, and still runs nothing of sub/'s.
    cli("allow", "-q", cwd=clone, check=True)
    report = json.loads(cli("explain", "--format", "json", cwd=clone / "sub", check=True).stdout)
    assert not marker.exists()
    # The date is the commit's, read from the clone's own repository.
    assert report["decisions"]["git_meta"]["status"] == f"hash={head}"
    assert report["env"]["BUILD_GIT_DATE"] == "2026-11-30 10:00:00 +0100"


def test_prompt_follows_head_and_restores_the_shell(base_env, repo):
    """``eval "$(buildpolicy env)"`` at every prompt in a real bash: the hash follows each
    commit (the value a previous prompt exported is not "the caller's"), and switching
    git_meta off removes what it exported."""
    first = commit(repo, "first")
    prompt = f"eval \"$('{sys.executable}' -m buildpolicy env -q)\""
    env = dict(base_env, BUILDPOLICY_GIT_META="on")
    script = "\n".join([
        "set -e", prompt, 'echo "1 $BUILD_GIT_HASH"',
        f"{' '.join(GIT)} commit -q --allow-empty -m second", prompt, 'echo "2 $BUILD_GIT_HASH"',
        "export BUILDPOLICY_GIT_META=off", prompt, 'echo "3 ${BUILD_GIT_HASH-unset}"',
    ])
    proc = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    second = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    assert proc.stdout.splitlines() == [f"1 {first}", f"2 {second}", "3 unset"]


def test_the_warm_prompt_starts_no_git_and_notices_a_commit(base_env, repo, tmp_path):
    """The replay re-reads HEAD from the files; git runs once per commit (for the date),
    never at a prompt where HEAD did not move."""
    first = commit(repo, "first")
    calls = tmp_path / "git-calls"
    shim = tmp_path / "shim"
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout.strip()
    write(shim / "git", f'#!/bin/sh\necho "$*" >> "{calls}"\nexec "{real}" "$@"\n').chmod(0o755)
    env = {"PATH": f"{shim}:{base_env['PATH']}", "BUILDPOLICY_GIT_META": "on"}
    out1, replayed1 = run_env(base_env, repo, env=env)
    out2, replayed2 = run_env(base_env, repo, env=env)
    assert (replayed1, replayed2) == (False, True) and out1.stdout == out2.stdout
    assert f"BUILD_GIT_HASH='{first}'".encode() in out2.stdout
    assert len(calls.read_text().splitlines()) == 1  # the date, once
    second = commit(repo, "second")
    out3, replayed3 = run_env(base_env, repo, env=env)
    assert not replayed3 and f"BUILD_GIT_HASH='{second}'".encode() in out3.stdout
    assert len(calls.read_text().splitlines()) == 2
    # Back to the first commit: its date is cached; HEAD moved, so the output follows.
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", first], check=True)
    out4, _ = run_env(base_env, repo, env=env)
    assert f"BUILD_GIT_HASH='{first}'".encode() in out4.stdout
    assert len(calls.read_text().splitlines()) == 2


BUILD_RS = """
fn main() {
    // The value of the variable, not .git: this build script reruns exactly when HEAD moves.
    println!("cargo:rerun-if-env-changed=BUILD_GIT_HASH");
    let hash = std::env::var("BUILD_GIT_HASH").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=APP_GIT_HASH={hash}");
}
"""


def test_a_new_commit_rebuilds_only_the_crate_that_embeds_it(e2e):
    """Real cargo: a workspace whose binary embeds the hash. After a commit only that crate
    is compiled again; the library it uses stays fresh, and without a commit nothing is
    rebuilt at all."""
    root = e2e.root
    write(root / "Cargo.toml", '[workspace]\nmembers = ["base", "app"]\nresolver = "2"\n')
    write(root / "buildpolicy.toml", 'policies = []\n[knobs]\ngit_meta = "on"\n')
    write(root / "base" / "Cargo.toml", '[package]\nname = "base"\nversion = "0.1.0"\nedition = "2021"\n')
    write(root / "base" / "src" / "lib.rs", "pub fn name() -> &'static str { \"app\" }\n")
    write(root / "app" / "Cargo.toml", '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
                                       '[dependencies]\nbase = { path = "../base" }\n')
    write(root / "app" / "build.rs", BUILD_RS)
    write(root / "app" / "src" / "main.rs", 'fn main() { println!("{} {}", base::name(), env!("APP_GIT_HASH")); }\n')
    for old in ("src", "Cargo.lock"):
        subprocess.run(["rm", "-rf", str(root / old)], check=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    first = commit(root, "first")
    e2e("allow", "-q")  # git_meta from a project file needs trust

    def build() -> tuple[set[str], set[str], str]:
        proc = e2e("exec", "--", "cargo", "build", "-v")
        compiled = set(re.findall(r"^\s*Compiling (\w+) ", proc.stderr, re.MULTILINE))
        fresh = set(re.findall(r"^\s*Fresh (\w+) ", proc.stderr, re.MULTILINE))
        out = subprocess.run([e2e.target / "debug" / "app"], capture_output=True, text=True, timeout=30).stdout.strip()
        return compiled, fresh, out

    assert build() == ({"base", "app"}, set(), f"app {first}")
    assert build() == (set(), {"base", "app"}, f"app {first}")  # same commit: nothing to do
    second = commit(root, "second")
    assert build() == ({"app"}, {"base"}, f"app {second}")
    plan = e2e.plan("--", "cargo", "build")
    flags = " ".join(value for name, value in plan["env"].items() if "RUSTFLAGS" in name)
    assert second not in flags and not any(second in value for name, value in plan["env"].items()
                                           if name.startswith(("CARGO_", "RUSTC")))

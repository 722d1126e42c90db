"""git.head read from repository files: loose, packed, detached, worktrees, and a real repo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from buildpolicy.facts import FactStore, ProbeContext
from tests.conftest import write

A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
B = "0badc0de" + "1" * 32
C = "c0ffee00" + "2" * 32


def head(cwd: Path, environ=None) -> FactStore:
    facts = FactStore(ProbeContext(cwd=cwd, environ=environ or {}, cache_dir=cwd / ".cache"))
    return facts


def test_loose_ref_from_a_subdirectory(tmp_path):
    write(tmp_path / ".git/HEAD", "ref: refs/heads/main\n")
    write(tmp_path / ".git/refs/heads/main", A + "\n")
    (tmp_path / "src/deep").mkdir(parents=True)
    assert head(tmp_path / "src/deep").get("git.head") == A[:7]


def test_packed_ref(tmp_path):
    write(tmp_path / ".git/HEAD", "ref: refs/heads/main\n")
    write(tmp_path / ".git/packed-refs", f"# pack-refs with: peeled fully-peeled sorted\n{B} refs/heads/feature\n"
                                         f"{A} refs/heads/main\n^{C}\n{C} refs/tags/v1\n")
    assert head(tmp_path).get("git.head") == A[:7]


def test_loose_ref_shadows_the_packed_one(tmp_path):
    write(tmp_path / ".git/HEAD", "ref: refs/heads/main\n")
    write(tmp_path / ".git/packed-refs", f"{A} refs/heads/main\n")
    write(tmp_path / ".git/refs/heads/main", B + "\n")
    assert head(tmp_path).get("git.head") == B[:7]


def test_detached_head(tmp_path):
    write(tmp_path / ".git/HEAD", C + "\n")
    assert head(tmp_path).get("git.head") == C[:7]


def test_worktree_gitdir_file_and_commondir(tmp_path):
    main = tmp_path / "main"
    write(main / ".git/refs/heads/main", A + "\n")
    write(main / ".git/packed-refs", f"{B} refs/heads/topic\n")
    write(main / ".git/worktrees/topic/HEAD", "ref: refs/heads/topic\n")
    write(main / ".git/worktrees/topic/commondir", "../..\n")
    worktree = tmp_path / "topic"
    write(worktree / ".git", f"gitdir: {main / '.git/worktrees/topic'}\n")
    assert head(worktree).get("git.head") == B[:7]


def test_relative_gitdir_file(tmp_path):
    # Submodules write a relative gitdir.
    write(tmp_path / ".git/modules/sub/HEAD", f"{A}\n")
    write(tmp_path / "sub/.git", "gitdir: ../.git/modules/sub\n")
    assert head(tmp_path / "sub").get("git.head") == A[:7]


def test_unborn_branch_and_no_repository_are_null(tmp_path):
    write(tmp_path / "repo/.git/HEAD", "ref: refs/heads/main\n")
    facts = head(tmp_path / "repo")
    assert facts.get("git.head") is None
    assert "HEAD does not point" in facts.unknown_reason("git.head")
    (tmp_path / "plain").mkdir()
    if any((parent / ".git").exists() for parent in (tmp_path, *tmp_path.parents)):
        pytest.skip("the temporary directory is inside a git repository")
    assert head(tmp_path / "plain").get("git.head") is None


def test_git_dir_from_the_callers_environment(tmp_path):
    write(tmp_path / "elsewhere/HEAD", f"{C}\n")
    (tmp_path / "work").mkdir()
    assert head(tmp_path / "work", {"GIT_DIR": str(tmp_path / "elsewhere")}).get("git.head") == C[:7]


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_real_repository_matches_git_rev_parse(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo / "a.txt", "one\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "one")
    assert head(repo).get("git.head") == git(repo, "rev-parse", "--short=7", "HEAD")

    write(repo / "a.txt", "two\n")
    git(repo, "commit", "-q", "-am", "two")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git/refs/heads/main").exists()
    assert head(repo).get("git.head") == git(repo, "rev-parse", "--short=7", "HEAD")

    git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"), "HEAD~1")
    assert head(tmp_path / "side").get("git.head") == git(tmp_path / "side", "rev-parse", "--short=7", "HEAD")
    assert head(tmp_path / "side").get("git.head") != head(repo).get("git.head")

    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    assert head(repo).get("git.head") == git(repo, "rev-parse", "--short=7", "HEAD")

"""Real memory cgroups for tests (``bench.memkit.cgroups``), as a fixture (made available to
every test module by conftest.py).

``memory_cgroup(limit_bytes)`` gives a new cgroup under this process's own, removed (its
processes killed) when the test ends. Where the machine cannot give one the test is
skipped with the reason, except under ``CI``, where it fails: the CI machines have
writable memory cgroups, so a skip there would hide a broken kit.
"""

from __future__ import annotations

import os

import pytest

from bench.memkit import cgroups


def require_memory_cgroups() -> None:
    """Skip the test (fail it under CI) when no memory cgroup can be created here, saying why."""
    reason = cgroups.skip_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on"):
        pytest.fail(f"memory cgroups are required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def memory_cgroup():
    """A factory ``memory_cgroup(limit_bytes) -> MemoryCgroup``; every cgroup it made is gone after the test."""
    require_memory_cgroups()
    made: list[cgroups.MemoryCgroup] = []

    def make(limit_bytes: int) -> cgroups.MemoryCgroup:
        made.append(cgroups.MemoryCgroup.create(limit_bytes))
        return made[-1]

    yield make
    failures = []
    for cgroup in made:  # every one, even after a failure
        try:
            cgroup.close()
        except cgroups.CgroupError as error:
            failures.append(str(error))
    assert not failures, failures

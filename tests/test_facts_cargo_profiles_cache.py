"""Cargo.toml profile facts are cached by file stat and follow edits."""

from __future__ import annotations

import os
import time

from buildpolicy.facts import FactStore, ProbeContext
from buildpolicy.filestate import RACY_MARGIN_NS


def _settle():
    """Let the files just written age past the racy window: a file changed while the
    probe reads it is not cached (buildpolicy.filestate.racy)."""
    time.sleep(2 * RACY_MARGIN_NS / 1e9)


def _incremental(tmp_path, cache):
    ctx = ProbeContext(cwd=tmp_path, environ={"HOME": str(tmp_path)}, cargo_argv=("cargo", "build", "--profile", "fast"),
                       cache_dir=cache)
    store = FactStore(ctx)
    return store.get("cargo.incremental"), store.source("cargo.incremental"), store.get("cargo.profile_inherits")


def test_profile_facts_cached_and_invalidated_by_edits(tmp_path):
    cache = tmp_path / "cache"
    manifest = tmp_path / "Cargo.toml"
    manifest.write_text('[package]\nname = "x"\nversion = "0.1.0"\n[profile.fast]\ninherits = "dev"\n')
    _settle()
    assert _incremental(tmp_path, cache) == (True, "probe", "dev")
    assert _incremental(tmp_path, cache)[0:2] == (True, "cache")
    manifest.write_text('[package]\nname = "x"\nversion = "0.1.0"\n[profile.fast]\ninherits = "release"\n')
    os.utime(manifest, ns=(1, 1))  # even a same-size edit with an old mtime is seen
    assert _incremental(tmp_path, cache) == (False, "probe", "release")
    config = tmp_path / ".cargo" / "config.toml"
    config.parent.mkdir()
    config.write_text("[profile.fast]\nincremental = true\n")
    assert _incremental(tmp_path, cache)[0] is True


def test_a_config_file_given_with_config_is_read_and_followed(tmp_path):
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "x"\nversion = "0.1.0"\n')
    extra = tmp_path / "extra.toml"
    extra.write_text("[profile.dev]\nincremental = false\n")
    _settle()

    def incremental():
        ctx = ProbeContext(cwd=tmp_path, environ={"HOME": str(tmp_path)},
                           cargo_argv=("cargo", "build", "--config", "extra.toml"), cache_dir=tmp_path / "cache")
        store = FactStore(ctx)
        return store.get("cargo.incremental"), store.source("cargo.incremental")

    assert incremental() == (False, "probe")
    assert incremental() == (False, "cache")
    extra.write_text("[profile.dev]\nincremental = true\n")  # same size
    _settle()
    assert incremental() == (True, "probe")

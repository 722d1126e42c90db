"""The cache benchmark runs and reports every row (the numbers belong to the benchmark, not to a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rustup import needs_rustup

REPO = Path(__file__).resolve().parent.parent


@needs_rustup
def test_quick_cache_bench_reports_each_row():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "bench_cache.py"), "--quick", "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (small,) = json.loads(result.stdout)["results"]
    rows = small["rows"]
    assert list(rows) == ["plain", "cold", "warm-local", "redis-first", "redis-second-machine", "dist-first",
                          "dist-later", "redis-dies-mid-build"]
    for name, row in rows.items():
        assert row["exit"] == 0 and row["wall_s"] > 0 and row["ratio"] > 0, (name, row)
    assert rows["cold"]["decision"] == "enabled" and rows["cold"]["misses"] >= 1
    assert rows["warm-local"]["hits"] == rows["cold"]["misses"]
    assert rows["redis-second-machine"]["decision"] == "enabled:redis"
    assert rows["redis-second-machine"]["hits"] >= 0.95 * rows["redis-first"]["misses"]
    assert rows["dist-first"]["decision"] == "enabled:local+dist" and rows["dist-first"]["packaged"] is True
    assert rows["dist-later"]["packaged"] is False
    assert rows["dist-first"]["dist_compiles"] > 0 and rows["dist-later"]["dist_compiles"] > 0
    assert rows["redis-dies-mid-build"]["switched"] is True
    assert rows["redis-dies-mid-build"]["decision"] == "fallback-local:redis-down"

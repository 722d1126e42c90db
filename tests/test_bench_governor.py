"""The governor benchmark runs and reports every configuration (the numbers belong to the benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rustup import needs_rustup

REPO = Path(__file__).resolve().parent.parent


@needs_rustup
def test_quick_governor_bench_reports_each_configuration_and_target():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "bench_governor.py"), "--quick", "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (light,) = json.loads(result.stdout)["results"]
    assert light["scenario"] == "light" and light["learning"]["exit"] == 0
    configs = light["summary"]["configs"]
    assert set(configs) == {"plain", "serial", "static", "governed"}
    for row in configs.values():
        assert row["failed"] == 0 and row["oom_kills"] == 0 and row["wall_s"] > 0 and row["peak_mib"] > 0
    assert configs["static"]["jobs"].startswith("adaptive:1 ")  # 1 GiB / 1792 MiB per job
    assert configs["governed"]["jobs"].startswith("governor-max:")
    assert configs["governed"]["max_concurrent"] >= 2  # learned: two light crates fit at once
    assert configs["governed"]["governor_rss_mib"] > 0
    targets = light["summary"]["targets"]
    assert "governed: 0 OOM kills" in targets and any(t.startswith("light: governed ≤ 0.8× static") for t in targets)

"""The benchmark script runs and reports every measurement (DESIGN §10).

Only the shape of the report is checked: timings belong to the benchmark, never to a test.
"""

from __future__ import annotations

import json
import numbers
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MEASUREMENTS = {
    "pass", "wrapper_print_setup", "env_warm", "env_cargo_warm", "rss_env_warm", "env_cold", "env_edited",
    "env_warm_shipped_group", "env_warm_1000_rules", "rss_env_1000_rules",
    "env_warm_full", "env_warm_shipped_full", "env_warm_1000_rules_full", "rss_env_warm_full",
    "check_10000_rules", "check_10000_rules_edit", "check_10000_rules_cold",
}
BUDGETED = {"env_warm", "env_cargo_warm", "env_warm_full", "env_edited", "rss_env_warm", "env_cold", "env_warm_1000_rules", "rss_env_1000_rules",
            "env_warm_1000_rules_full", "rss_env_warm_full", "check_10000_rules", "check_10000_rules_edit", "check_10000_rules_cold"}


def test_quick_bench_reports_every_measurement_as_json():
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_env.py"), "--quick", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["id"]: row for row in report["measurements"]}
    assert set(rows) == MEASUREMENTS
    for mid, row in rows.items():
        for key in ("median", "p90", "max"):
            assert isinstance(row[key], numbers.Real) and row[key] > 0, (mid, key, row[key])
        assert row["runs"] >= 1
        if mid in BUDGETED:
            assert isinstance(row["passed"], bool) and row["budget"], row
    for mid in ("env_warm", "env_cargo_warm", "env_cold", "env_warm_1000_rules"):
        assert isinstance(rows[mid]["ratio"], numbers.Real), rows[mid]
    assert report["synthetic_rules"] == 1000
    assert isinstance(report["all_passed"], bool)

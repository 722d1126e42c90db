"""The remote-probe benchmark runs and reports every measurement (DESIGN §10).

Only the report's shape is checked: latencies belong to the benchmark, never to a test.
"""

from __future__ import annotations

import json
import numbers
import subprocess
import sys
from pathlib import Path

from tests.sshd import require

REPO = Path(__file__).resolve().parent.parent
BUDGETED = {"first_probe_silent", "ttl_probe_silent", "first_probe_3_silent", "ttl_probe_3_silent",
            "first_probe_refused_then_silent"}


def test_bench_remote_reports_every_measurement_as_json():
    require("ssh")
    result = subprocess.run([sys.executable, str(REPO / "bench" / "bench_remote.py"), "--runs", "1", "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["id"]: row for row in report["measurements"]}
    assert set(rows) == BUDGETED | {"cli_env_first_silent", "cli_env_ttl_silent"}
    for mid, row in rows.items():
        assert isinstance(row["median"], numbers.Real) and row["median"] > 0, mid
        assert (row["budget"] is None) == (mid not in BUDGETED)
        assert row["passed"] is None or isinstance(row["passed"], bool)
    assert isinstance(report["several_vs_one_ratio"], numbers.Real) and isinstance(report["all_passed"], bool)

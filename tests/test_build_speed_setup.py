"""The build-speed benchmark's set-up and bookkeeping (bench/build_speed.py, bench/setup_build_project.sh).

No build is timed here (timings belong to the benchmark, never to a test): these check the
configuration matrix, the availability checks, the regret arithmetic, the touched-file
edit and its undoing, the sanitized environment, and the `--plan` mode end to end on a
tiny cargo project.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "build_speed.py"
SETUP = REPO / "bench" / "setup_build_project.sh"


def _load():
    spec = importlib.util.spec_from_file_location("build_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_speed"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bs = _load()


def test_setup_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SETUP)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None and not os.environ.get("CI"),
                    reason="shellcheck not installed (scripts/install-system-deps.sh installs it)")
def test_setup_script_passes_shellcheck():
    result = subprocess.run(["shellcheck", str(SETUP)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("cpus", "jobs", "threads"), [(1, {1}, 1), (2, {1, 2}, 2), (8, {1, 2}, 4)])
def test_every_linker_frontend_jobs_combination_once(cpus, jobs, threads):
    configs = bs.build_configs(cpus)
    assert [c.id for c in configs[:2]] == ["plain", "policy"]
    assert configs[0].argv(["cargo", "build"]) == ["cargo", "build"]
    assert configs[1].argv(["cargo", "build"]) == [*bs.BUILDPOLICY, "exec", "--", "cargo", "build"]
    venv = ("/v/bin/python", "-m", "buildpolicy")
    assert all(c.argv(["cargo"])[:3] == list(venv) for c in bs.build_configs(cpus, venv)[1:])
    combos = configs[2:]
    assert len({c.id for c in configs}) == len(configs)
    wanted = {(l, f, j) for l in ("system", "lld", "mold") for f in ("off", "on") for j in jobs}
    assert {(c.want["linker"], c.want["frontend"], c.want["jobs"]) for c in combos} == wanted
    for c in combos:
        assert c.is_combo
        assert f"linker={c.want['linker']}" in c.sets and f"jobs={c.want['jobs']}" in c.sets
        assert "sccache=off" in c.sets  # sccache never silently involved
        assert (f"frontend_threads={threads}" in c.sets) == (c.want["frontend"] == "on")
        argv = c.argv(["cargo", "build"])
        assert argv[-3:] == ["--", "cargo", "build"]


def _want(linker="mold", frontend="off", jobs=2, threads=2):
    return {"linker": linker, "frontend": frontend, "jobs": jobs, "threads": threads}


def test_mismatch_names_every_decision_that_differs_from_the_request():
    assert bs.mismatch(_want(), {"linker": "mold", "frontend": "disabled-by-knob", "jobs": "override:2"}) == ""
    on = {"linker": "lld", "frontend": "enabled:nightly-x86_64-unknown-linux-gnu:threads=2", "jobs": "override:1"}
    assert bs.mismatch(_want("lld", "on", 1), on) == ""
    why = bs.mismatch(_want("mold", "on", 2), {"linker": "system", "frontend": "skipped-no-nightly", "jobs": "override:2"})
    assert "linker decided 'system'" in why and "skipped-no-nightly" in why
    assert "wanted override:1" in bs.mismatch(_want(jobs=1), {"linker": "mold", "frontend": "x", "jobs": "adaptive:2"})
    assert "wanted off" in bs.mismatch(_want(), {"linker": "mold", "frontend": on["frontend"], "jobs": "override:2"})


def test_the_policy_is_matched_to_the_combination_it_amounts_to():
    configs = bs.build_configs(2)
    adaptive = "adaptive:2 (cpus=2, mem_avail=23539MiB, budget=1792MiB/job)"
    assert bs.policy_equivalent(
        {"linker": "mold", "frontend": "skipped-profile-shared-target:dev", "jobs": adaptive}, configs) == "mold-off-j2"
    assert bs.policy_equivalent(
        {"linker": "lld", "frontend": "enabled:nightly:threads=2", "jobs": "override:1"}, configs) == "lld-on-j1"
    assert bs.policy_equivalent(
        {"linker": "lld", "frontend": "enabled:nightly:threads=3", "jobs": "override:1"}, configs) is None
    assert bs.policy_equivalent({"linker": "skipped-os", "frontend": "", "jobs": adaptive}, configs) is None
    assert bs.policy_equivalent({"linker": "mold", "jobs": "cargo-default"}, configs) is None


def test_regret_is_policy_over_best_combination_plain_and_paired():
    configs = bs.build_configs(2)
    by_id = {c.id: c for c in configs}
    by_id["policy"].times["touched"] = [1.2, 1.0, 1.1]
    by_id["mold-off-j2"].times["touched"] = [1.0, 1.0, 1.0]
    by_id["lld-off-j2"].times["touched"] = [0.6, 2.0, 0.9]  # median 0.9: the best by median
    by_id["plain"].times["touched"] = [0.1, 0.1, 0.1]  # plain cargo is not a combination
    r = bs.regret(configs, "touched")
    assert r["best"] == "lld-off-j2" and r["best_median"] == pytest.approx(0.9)
    assert r["regret"] == pytest.approx(1.1 / 0.9)
    assert r["regret_paired"] == pytest.approx(sorted([1.2 / 0.6, 1.0 / 2.0, 1.1 / 0.9])[1])
    assert r["regret_choice"] is None  # no equivalent combination named
    assert bs.regret(configs, "touched", "mold-off-j2")["regret_choice"] == pytest.approx(1.0 / 0.9)
    assert bs.regret(configs, "clean")["regret"] is None  # nothing measured


def test_markdown_table_marks_best_policy_and_unavailable():
    configs = bs.build_configs(2)
    by_id = {c.id: c for c in configs}
    for c in configs:
        c.times["clean"] = [20.0 if c.id != "mold-off-j2" else 10.0]
    by_id["mold-on-j1"].available = False
    by_id["mold-on-j1"].why_unavailable = "unknown knob 'frontend'"
    table = bs.markdown_table(configs, ["clean"], {"clean": bs.regret(configs, "clean")}, "mold-off-j2")
    lines = table.splitlines()
    assert len(lines) == 2 + len(configs)
    assert "10.00 **best**" in next(l for l in lines if "mold × off × jobs=2" in l)
    assert "≡ policy" in next(l for l in lines if "mold × off × jobs=2" in l)
    assert "≡ mold-off-j2" in next(l for l in lines if "policy's choice" in l)
    assert "unavailable" in next(l for l in lines if "mold × on (threads=2) × jobs=1" in l)


def test_touching_shifts_every_line_and_is_undone(tmp_path):
    main = tmp_path / "main.rs"
    main.write_text("#![allow(dead_code)]\nfn main() {}\n")
    original = bs.pristine_source(main)
    bs.touch_source(main, 1)
    bs.touch_source(main, 2)
    assert main.read_text().splitlines()[:2] == [f"{bs.TOUCH_MARK} 2", f"{bs.TOUCH_MARK} 1"]
    assert bs.pristine_source(main) == original  # what a killed run leaves is recognised
    bs.restore_source(main, original)
    assert main.read_bytes() == b"#![allow(dead_code)]\nfn main() {}\n"

    script = tmp_path / "script.rs"
    script.write_text("#!/usr/bin/env run-cargo-script\nfn main() {}\n")
    bs.touch_source(script, 3)
    assert script.read_text().splitlines()[:2] == ["#!/usr/bin/env run-cargo-script", f"{bs.TOUCH_MARK} 3"]


def test_sanitized_environment_drops_build_settings_and_wrappers(tmp_path, monkeypatch):
    for name, value in {"RUSTC_WRAPPER": "sccache", "CARGO_BUILD_RUSTC_WRAPPER": "sccache", "SCCACHE_DIR": "/x",
                        "RUSTFLAGS": "-Cfoo", "RUSTUP_TOOLCHAIN": "nightly", "BUILDPOLICY_JOBS": "7",
                        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER": "clang", "CARGO_INCREMENTAL": "0",
                        "PYTHONPATH": "/elsewhere", "KEEP_ME": "1"}.items():
        monkeypatch.setenv(name, value)
    env = bs.sanitized_environ(tmp_path)
    for name in ("RUSTC_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER", "SCCACHE_DIR", "RUSTFLAGS", "RUSTUP_TOOLCHAIN",
                 "BUILDPOLICY_JOBS", "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER", "CARGO_INCREMENTAL"):
        assert name not in env
    assert env["KEEP_ME"] == "1"
    assert "PYTHONPATH" not in env  # buildpolicy comes from the chosen venv or install, nothing else
    assert env["XDG_CONFIG_HOME"] == str(tmp_path / "config") and not os.listdir(env["XDG_CONFIG_HOME"])
    assert env["BUILDPOLICY_SITE_DIR"] == str(tmp_path / "site") and not os.listdir(env["BUILDPOLICY_SITE_DIR"])


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo not installed")
def test_plan_lists_every_configuration_with_buildpolicys_decisions(tmp_path):
    project = tmp_path / "hello"
    (project / "src").mkdir(parents=True)
    (project / "Cargo.toml").write_text('[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n')
    (project / "src" / "main.rs").write_text('fn main() { println!("hi"); }\n')
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--plan", "--tree", "worktree", "--project", str(project),
         "--work-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["bin"] == "hello" and plan["main_source"] == str(project / "src" / "main.rs")
    configs = {c["id"]: c for c in plan["configs"]}
    assert set(configs) == {c.id for c in bs.build_configs(len(os.sched_getaffinity(0)))}
    assert configs["plain"]["argv"] == ["cargo", "build"] and configs["plain"]["decisions"] == {}
    policy = configs["policy"]
    assert policy["available"], policy["why_unavailable"]
    assert "RUSTC_WRAPPER" not in policy["env"]  # dev profile: incremental, so no sccache
    for cid, c in configs.items():
        if cid in ("plain", "policy"):
            continue
        # Either buildpolicy decided exactly what was asked, or the reason says why not.
        assert c["available"] or c["why_unavailable"], cid
        if c["available"]:
            assert c["decisions"]["jobs"] == f"override:{cid[-1]}"
            assert c["decisions"]["sccache"] == "disabled-by-knob"
            assert "RUSTC_WRAPPER" not in c["env"]


def test_gate_and_remote_are_pinned_off_for_buildpolicy_configurations_only_when_declared():
    configs = bs.build_configs(2)
    bs.pin_knobs(configs, {"jobs", "linker", "gate"})
    assert configs[0].sets is None  # plain cargo: no buildpolicy at all
    assert configs[1].sets == ("gate=off",)
    assert all(c.sets[-1] == "gate=off" and "remote=off" not in c.sets for c in configs[2:])


def test_a_saved_report_gives_back_the_same_summary():
    configs = bs.build_configs(2)
    for i, c in enumerate(configs):
        c.times["touched"], c.cpu["touched"] = [1.0 + i / 10, 1.1 + i / 10], [0.5, 0.6]
    configs[5].available, configs[5].why_unavailable = False, "no nightly"
    configs[5].times, configs[5].cpu = {}, {}
    rows = [{"id": c.id, "label": c.label, "available": c.available, "why_unavailable": c.why_unavailable,
             "decisions": c.decisions, "env": c.env, "times": c.times, "cpu": c.cpu, "failures": c.failures}
            for c in configs]
    back = bs.configs_from_report(json.loads(json.dumps({"configs": rows})))
    assert bs.summary(back, ["touched"], "mold-off-j2")[0] == bs.summary(configs, ["touched"], "mold-off-j2")[0]

#!/usr/bin/env python3
"""Benchmark the remote decision's probes against the budgets of DESIGN §10.

"Remote host down: under 1.1 s for the first probe, under 0.35 s inside the
down TTL; several hosts cost the slowest one, not the sum." This script
measures exactly that, on loopback only: a *silent* host is a listener on
127.0.0.1 with backlog 0 whose accept queue is full (the kernel drops new
SYNs, so a connect waits for its timeout, like a host that is off the
network), a *refused* host is a closed port (RST at once). Hosts are ssh
aliases in a generated config (``remote_ssh_config``), so each probe also
pays for its ``ssh -G`` resolution, as in real use.

Measurements (medians over ``--runs`` repetitions, default knobs:
``remote_tcp_timeout`` 1.0 s, ``remote_recovery_timeout`` 0.3 s):

- ``first_probe_silent``: one silent host, empty down cache — budget 1.1 s;
- ``ttl_probe_silent``: the same host with its failure recorded — budget 0.35 s;
- ``first_probe_3_silent``: three silent hosts at once — budget 1.1 s (the sum would be 3 s);
- ``ttl_probe_3_silent``: the same three inside the TTL — budget 0.35 s;
- ``first_probe_refused_then_silent``: a refused and a silent host — budget 1.1 s;
- ``cli_env_first_silent`` / ``cli_env_ttl_silent``: a whole ``buildpolicy env``
  process with remote on, for information (interpreter start-up included, no budget).
  ``env`` never probes (it decides from recorded results and leaves probing to a
  detached background refresh), so these show what a prompt costs with a silent host
  configured: the first with nothing recorded yet, the second after one earlier prompt.

It is a report, not a test: it exits 0 whatever the numbers say (``--check``
makes a missed budget exit 1; exit 2 when it cannot run). Nothing contacts an
address outside 127.0.0.0/8.

    python bench/bench_remote.py [--runs N] [--quick] [--json] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from buildpolicy.run.remote.hosts import Settings
from buildpolicy.run.remote.probe import choose_host  # noqa: E402

FIRST_BUDGET = 1.1
TTL_BUDGET = 0.35
TCP_TIMEOUT = 1.0  # the knobs' defaults
RECOVERY_TIMEOUT = 0.3
LOOPBACK = "127.0.0.1"


class SilentPort:
    """A loopback port that never answers: backlog 0 and a full accept queue."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect((LOOPBACK, self.port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)
        time.sleep(0.05)

    def close(self):
        for sock in self.fillers:
            sock.close()
        self.listener.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def write_config(path: Path, aliases: dict[str, int]) -> Path:
    blocks = [
        f"Host {alias}\n  HostName {LOOPBACK}\n  Port {port}\n  StrictHostKeyChecking no\n"
        f"  UserKnownHostsFile {path}.known_hosts\n  LogLevel ERROR\n"
        for alias, port in aliases.items()
    ]
    path.write_text("\n".join(blocks))
    return path


def settings(ssh: str, config: Path, state: Path, *hosts: str) -> Settings:
    return Settings(hosts=hosts, ssh=ssh, ssh_config=str(config), tcp_timeout=TCP_TIMEOUT,
                    recovery_timeout=RECOVERY_TIMEOUT, down_ttl=300.0, tcp_probe=True, connect_timeout=5.0, state_dir=state)


def timed_choice(ssh, config, state, hosts, environ) -> float:
    started = time.perf_counter()
    choice = choose_host(settings(ssh, config, state, *hosts), environ)
    elapsed = time.perf_counter() - started
    if choice.host is not None or any(r.ok for r in choice.reports):
        raise SystemExit(f"bench_remote: a host that should be down answered: {choice}")
    return elapsed


def summary(mid: str, samples: list[float], budget: float | None, note: str) -> dict:
    ordered = sorted(samples)
    row = {
        "id": mid,
        "runs": len(samples),
        "median": statistics.median(samples),
        "p90": ordered[max(0, int(round(0.9 * len(ordered))) - 1)],
        "max": ordered[-1],
        "budget": budget,
        "note": note,
    }
    row["passed"] = None if budget is None else row["median"] <= budget
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 runs per measurement")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget is missed")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else max(1, args.runs)
    ssh = shutil.which("ssh")
    if ssh is None:
        print("bench_remote: ssh is not installed (Debian package openssh-client)", file=sys.stderr)
        return 2

    silent = [SilentPort() for _ in range(3)]
    rows = []
    # `env` starts a detached background refresh that may still write into its state dir
    # when the measurements end: the directory is removed once those have finished.
    with tempfile.TemporaryDirectory(prefix="bench-remote-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        aliases = {f"silent{i}": port.port for i, port in enumerate(silent)}
        aliases["refused"] = closed_port()
        config = write_config(root / "ssh_config", aliases)
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}

        def fresh_state(name: str, index: int) -> Path:
            path = root / f"state-{name}-{index}"
            path.mkdir()
            return path

        def measure(mid, hosts, budget, note, within_ttl):
            samples = []
            for index in range(runs):
                state = fresh_state(mid, index)
                if within_ttl:
                    timed_choice(ssh, config, state, hosts, environ)  # records the failures
                samples.append(timed_choice(ssh, config, state, hosts, environ))
            rows.append(summary(mid, samples, budget, note))

        measure("first_probe_silent", ("silent0",), FIRST_BUDGET, "one silent host, empty down cache", False)
        measure("ttl_probe_silent", ("silent0",), TTL_BUDGET, "one silent host, failure recorded", True)
        measure("first_probe_3_silent", ("silent0", "silent1", "silent2"), FIRST_BUDGET,
                "three silent hosts probed concurrently (the sum would be 3.0 s)", False)
        measure("ttl_probe_3_silent", ("silent0", "silent1", "silent2"), TTL_BUDGET,
                "three silent hosts inside the TTL (the sum would be 0.9 s)", True)
        measure("first_probe_refused_then_silent", ("refused", "silent0"), FIRST_BUDGET,
                "a refused host then a silent one", False)

        # The whole command, for information: interpreter start-up and policy loading included.
        env = dict(environ, XDG_CACHE_HOME=str(root / "cache"), XDG_CONFIG_HOME=str(root / "config"),
                   BUILDPOLICY_SITE_DIR=str(root / "site"), BUILDPOLICY_REMOTE="on",
                   BUILDPOLICY_REMOTE_HOSTS="silent0", BUILDPOLICY_REMOTE_SSH_CONFIG=str(config))
        for mid, within_ttl in (("cli_env_first_silent", False), ("cli_env_ttl_silent", True)):
            samples = []
            for index in range(runs):
                run_env = dict(env, XDG_STATE_HOME=str(fresh_state(mid, index)))
                argv = [sys.executable, "-m", "buildpolicy", "env", "-q"]
                if within_ttl:
                    subprocess.run(argv, env=run_env, cwd=root, capture_output=True, check=True, timeout=60)
                started = time.perf_counter()
                subprocess.run(argv, env=run_env, cwd=root, capture_output=True, check=True, timeout=60)
                samples.append(time.perf_counter() - started)
            rows.append(summary(mid, samples, None, "`buildpolicy env` process, remote on, one silent host"))
        remove_when_quiet(root)
    for port in silent:
        port.close()

    single = next(r for r in rows if r["id"] == "first_probe_silent")["median"]
    several = next(r for r in rows if r["id"] == "first_probe_3_silent")["median"]
    ratio = several / single
    all_passed = all(r["passed"] for r in rows if r["passed"] is not None) and ratio < 1.5
    report = {"runs": runs, "measurements": rows, "several_vs_one_ratio": ratio, "all_passed": all_passed}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"remote probe latency, loopback, medians of {runs} runs "
              f"(remote_tcp_timeout {TCP_TIMEOUT:g}s, remote_recovery_timeout {RECOVERY_TIMEOUT:g}s)\n")
        print(f"{'measurement':34} {'median':>8} {'p90':>8} {'max':>8} {'budget':>8}  result")
        for row in rows:
            budget = f"{row['budget']:.2f}s" if row["budget"] is not None else "-"
            result = "info" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")
            print(f"{row['id']:34} {row['median']:7.3f}s {row['p90']:7.3f}s {row['max']:7.3f}s {budget:>8}  {result}  {row['note']}")
        verdict = "PASS" if ratio < 1.5 else "FAIL"
        print(f"\nseveral hosts vs one (first probe): {ratio:.2f}x — the slowest, not the sum (3 hosts would be 3.0x): {verdict}")
        print("all budgets met" if all_passed else "BUDGET MISSED")
    return 1 if args.check and not all_passed else 0


def remove_when_quiet(root: Path, patience: float = 30.0) -> None:
    """Remove ``root`` once no background refresh writes into it any more (give up after
    ``patience`` seconds: a leftover temporary directory is not worth failing the report)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            shutil.rmtree(root)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())

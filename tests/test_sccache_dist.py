"""The sccache-dist knobs (DESIGN §12): forms, token references, trust, the scheduler's probe
by protocol, and the record a prompt decides from. The scheduler here is a small HTTP server
in a thread answering as sccache-dist's status endpoint does (three little-endian u64); the
real farm is in tests/test_sccache_dist_e2e.py."""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from buildpolicy.run.cache import dist
from tests.conftest import write

RELEASE = ("--", "cargo", "build", "--release")


@pytest.mark.parametrize("value, url", [
    ("http://127.0.0.1", "http://127.0.0.1:10600"),
    ("https://farm.example.com:8443/", "https://farm.example.com:8443"),
    ("http://[::1]:7000", "http://[::1]:7000"),
])
def test_scheduler_forms(value, url):
    assert dist.parse_scheduler(value).url == url
    assert dist.parse_scheduler("") is None


@pytest.mark.parametrize("value, problem", [
    ("farm.example.com:10600", "http:// or https://"),
    ("ftp://farm", "http:// or https://"),
    ("http://user:hunter2@farm", "no credentials in the URL"),
    ("http://farm/api", "no path"),
    ("http://-oProxyCommand=x", "no usable host"),
])
def test_bad_scheduler_values_are_refused_saying_why(value, problem):
    message = dist.check_scheduler(value)
    assert message is not None and problem in message and "hunter2" not in message


def test_a_literal_token_is_refused_wherever_it_comes_from(cli, tmp_path):
    project = tmp_path / "proj"
    write(project / "Cargo.toml", '[package]\nname = "p"\nversion = "0.1.0"\n')
    proc = cli("env", cwd=project, env={"BUILDPOLICY_SCCACHE_DIST_TOKEN": "s3cr3t-token-value"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert "sccache_dist_token" in proc.stderr and "env:VAR or file:/ABS/PATH" in proc.stderr
    assert "s3cr3t" not in proc.stderr
    # Typed on the command line or given to `buildpolicy set`: refused, and not echoed either.
    typed = cli("env", "--set", "sccache_dist_token=s3cr3t-token-value", cwd=project)
    kept = cli("set", "sccache_dist_token", "s3cr3t-token-value", cwd=project)
    for refused in (typed, kept):
        assert refused.returncode == 2 and "sccache_dist_token" in refused.stderr, refused.stderr
        assert "s3cr3t" not in refused.stderr


class _Scheduler:
    """An HTTP server in a thread answering GET /api/v1/scheduler/status with ``body``."""

    def __init__(self, body: bytes, status: int = 200):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scheduler():
    made = []

    def make(body=struct.pack("<QQQ", 1, 2, 0), status=200):
        made.append(_Scheduler(body, status))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_the_scheduler_is_asked_its_status_and_needs_a_build_server(scheduler):
    up = scheduler()
    found = dist.probe(dist.parse_scheduler(up.url), "tok", 2.0)
    assert found.ok and "1 build server(s), 2 CPUs" in found.reason
    assert up.seen == [("/api/v1/scheduler/status", "Bearer tok")]
    empty = scheduler(struct.pack("<QQQ", 0, 0, 0))
    assert not dist.probe(dist.parse_scheduler(empty.url), None, 2.0).ok
    # Something else answering HTTP on that port (a proxy, another service) is not a scheduler.
    other = scheduler(b"<html>hello</html>")
    assert "not sccache-dist's status" in dist.probe(dist.parse_scheduler(other.url), None, 2.0).reason
    missing = scheduler(b"", status=404)
    assert "HTTP 404" in dist.probe(dist.parse_scheduler(missing.url), None, 2.0).reason


def test_env_decides_from_the_recorded_probe_and_never_prints_the_token(cli, tmp_path, scheduler):
    crate = tmp_path / "crate"
    write(crate / "Cargo.toml", '[package]\nname = "c"\nversion = "0.1.0"\nedition = "2021"\n')
    write(crate / "src" / "lib.rs", "pub fn f() {}\n")
    token_file = write(tmp_path / "token", "the-farm-token-1234\n")
    farm = scheduler()
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{cli.env['PATH']}", "BUILDPOLICY_SCCACHE": "on",
           "BUILDPOLICY_SCCACHE_DIST_SCHEDULER": farm.url, "BUILDPOLICY_SCCACHE_DIST_TOKEN": f"file:{token_file}"}
    explain = lambda: json.loads(cli("explain", "--format", "json", *RELEASE, cwd=crate, env=env, check=True).stdout)
    first = explain()["decisions"]["sccache"]
    assert first["status"] == "fallback-local:dist-down" and "no probe of it is recorded" in first["reason"]
    assert farm.seen == []  # explain never asks the network
    proc = cli("exec", "--dry-run", *RELEASE, cwd=crate, env=env, check=True)
    plan = json.loads(proc.stdout)
    assert plan["decisions"]["sccache"]["status"] == "enabled:local+dist"
    conf = Path(plan["env"]["SCCACHE_CONF"])
    assert conf.stat().st_mode & 0o777 == 0o600 and conf.parent.stat().st_mode & 0o777 == 0o700
    assert 'token = "the-farm-token-1234"' in conf.read_text() and f'scheduler_url = "{farm.url}"' in conf.read_text()
    asked = len(farm.seen)
    shown = explain()
    assert shown["decisions"]["sccache"]["status"] == "enabled:local+dist" and len(farm.seen) == asked
    assert any("may run on a build server" in line for line in shown["decisions"]["sccache"]["details"])
    env_out = cli("env", *RELEASE, cwd=crate, env=env, check=True).stdout
    assert str(conf) in env_out
    for output in (proc.stdout, proc.stderr, env_out, json.dumps(shown)):
        assert "the-farm-token-1234" not in output
    # Another token: another configuration file, and so another private server.
    other_token = write(tmp_path / "token2", "another-token\n")
    moved = json.loads(cli("exec", "--dry-run", *RELEASE, cwd=crate, check=True,
                           env=dict(env, BUILDPOLICY_SCCACHE_DIST_TOKEN=f"file:{other_token}")).stdout)["env"]
    assert moved["SCCACHE_CONF"] != str(conf) and moved["SCCACHE_SERVER_UDS"] != plan["env"]["SCCACHE_SERVER_UDS"]

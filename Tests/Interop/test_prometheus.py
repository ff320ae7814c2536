"""`/metrics` scraped by a real Prometheus (Debian's `prometheus`), read back through its HTTP API.

`socket-gateway serve` runs with its metrics on a port of their own (SOCKET_METRICS_PORT=0, announced as
`METRICS LISTENING <port>`); a private `prometheus` scrapes it every second; python-socketio clients connect and a
python-socketio publisher emits through Redis; the values Prometheus stored must match what happened.
"""

import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import socketio

from cluster_helpers import ServeProcess, cli_path, new_channel, redis_url, run_cli, wait_until_subscribed
from interop import Peer, mint_token, run
from processes import start_on_free_port, wait_until_listening

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def read_lines(process: subprocess.Popen, count: int, seconds: float = 60) -> list:
    """The first `count` lines `process` prints on stdout (bounded wait)."""
    deadline = time.monotonic() + seconds
    buffer = b""
    while buffer.count(b"\n") < count and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
    return [line.decode(errors="replace").strip() for line in buffer.split(b"\n")[:count]]


def start_serve_with_metrics(tmp_path: Path, redis: str, channel: str):
    """`serve` with SOCKET_METRICS_PORT=0 on loopback: (ServeProcess, metrics port)."""
    secret = secrets.token_urlsafe(24)
    log = tmp_path / "serve.log"
    environment = dict(os.environ, SOCKET_METRICS_PORT="0", SOCKET_METRICS_HOST="127.0.0.1")
    environment.pop("REDIS_URL", None)
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [str(cli_path()), "serve", "--port", "0", "--redis-url", redis, "--channel", channel,
             f"--token-secret={secret}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, env=environment,
        )
    lines = read_lines(process, 2)
    if len(lines) != 2 or not lines[0].startswith("LISTENING ") or not lines[1].startswith("METRICS LISTENING "):
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"serve printed {lines!r}\n{log.read_text(errors='replace')}")
    serve = ServeProcess(process=process, port=int(lines[0].split()[1]), secret=secret, log=log)
    wait_until_subscribed(serve)
    return serve, int(lines[1].split()[2])


class PrometheusProcess:
    """A private `prometheus` on a free loopback port, scraping `target` every second, its data in `tmp_path`."""

    def __init__(self, tmp_path: Path, target: str):
        if not Path(PROMETHEUS).is_file():
            pytest.fail(f"{PROMETHEUS} is missing: install Debian's prometheus package (tools/test does)")
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: socket-gateway\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = tmp_path / "prometheus.log"
        # Its port is chosen, not reported: another one when another process took it before prometheus bound it.
        self.port, self.process = start_on_free_port("prometheus", lambda port: (port, self._start(config, port)))
        self.url = f"http://127.0.0.1:{self.port}"

    def _start(self, config: Path, port: int) -> subprocess.Popen:
        with open(self.log, "wb") as log_file:
            process = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.log.parent / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                    return response.status == 200 and b"Prometheus" in response.read()
            except OSError:
                return False

        wait_until_listening(process, "prometheus", port, ready, lambda: self.log.read_text(errors="replace"), 30)
        return process

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def query(self, expression: str) -> list:
        """The result vector of an instant query through `/api/v1/query`."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for_value(self, expression: str, expected: float, seconds: float = 30) -> None:
        """Waits (bounded) until `expression` has exactly one series whose value is `expected`."""
        deadline = time.monotonic() + seconds
        result = []
        while time.monotonic() < deadline:
            result = self.query(expression)
            if len(result) == 1 and float(result[0]["value"][1]) == expected:
                return
            time.sleep(0.25)
        pytest.fail(f"{expression}: expected {expected}, Prometheus has {result!r}\n{self.log_tail()}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def test_prometheus_scrapes_serve_and_reads_back_connections_and_emits(tmp_path):
    redis, channel = redis_url(), new_channel()
    serve, metrics_port = start_serve_with_metrics(tmp_path, redis, channel)
    prometheus = None
    try:
        # On its own port, the Socket.IO listener does not answer /metrics.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(serve.url + "/metrics", timeout=5)
        assert refused.value.code == 404
        prometheus = PrometheusProcess(tmp_path, f"127.0.0.1:{metrics_port}")
        prometheus.wait_for_value('up{job="socket-gateway"}', 1)

        async def scenario():
            peers = [Peer(serve.url, mint_token(serve.secret, user), name=f"user-{user}") for user in ("41", "42")]
            manager = socketio.AsyncRedisManager(redis, channel=channel, write_only=True)
            try:
                for peer in peers:
                    await peer.connect()
                await manager.emit("note", {"n": 1}, room="user:42")
                await manager.emit("note", {"n": 2}, room="user:42")
                await manager.emit("note", {"n": 3})
                assert await peers[1].next("note") == [{"n": 1}]
                assert await peers[1].next("note") == [{"n": 2}]
                assert await peers[1].next("note") == [{"n": 3}]
                assert await peers[0].next("note") == [{"n": 3}]
                prometheus.wait_for_value('socketgateway_socket_connections{namespace="/"}', 2)
                # Two emits to one client, one to both: four packets written.
                prometheus.wait_for_value("socketgateway_emit_deliveries_total", 4)
                prometheus.wait_for_value("sum(socketgateway_redis_received_total)", 3)
                prometheus.wait_for_value("socketgateway_namespaces", 1)
                # Each client's own sid room and its user:<id> room.
                prometheus.wait_for_value("socketgateway_rooms", 4)
                prometheus.wait_for_value('socketgateway_redis_subscriber_connected', 1)
            finally:
                for peer in peers:
                    await peer.close()

        run(scenario())
        prometheus.wait_for_value('socketgateway_socket_connections{namespace="/"}', 0)
        prometheus.wait_for_value("socketgateway_rooms", 0)
    finally:
        if prometheus is not None:
            prometheus.stop()
        serve.stop()


def test_serve_answers_metrics_on_its_listener_by_default(tmp_path):
    redis, channel = redis_url(), new_channel()
    secret = secrets.token_urlsafe(24)
    log = tmp_path / "serve.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SOCKET_METRICS") and k != "REDIS_URL"}
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [str(cli_path()), "serve", "--port", "0", "--redis-url", redis, "--channel", channel,
             f"--token-secret={secret}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, env=environment,
        )
    lines = read_lines(process, 1)
    if not lines or not lines[0].startswith("LISTENING "):
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"serve printed {lines!r}\n{log.read_text(errors='replace')}")
    serve = ServeProcess(process=process, port=int(lines[0].split()[1]), secret=secret, log=log)
    try:
        wait_until_subscribed(serve)
        with urllib.request.urlopen(serve.url + "/metrics", timeout=5) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = response.read().decode()
        assert "# TYPE socketgateway_namespaces gauge\nsocketgateway_namespaces 1.0\n" in text, text
        assert f'socketgateway_redis_subscriber_connected{{channel="{channel}"}} 1.0\n' in text, text
    finally:
        serve.stop()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"SOCKET_METRICS_PORT": "http"}, "SOCKET_METRICS_PORT must be 0...65535 (0 picks a free port), got 'http'"),
        ({"SOCKET_METRICS": "sometimes"}, "SOCKET_METRICS must be on or off, got 'sometimes'"),
        ({"SOCKET_METRICS_PATH": "/socket.io/m"}, "SOCKET_METRICS_PATH '/socket.io/m' is taken"),
        ({"SOCKET_METRICS_HOST": "0.0.0.0"}, "SOCKET_METRICS_HOST needs SOCKET_METRICS_PORT"),
    ],
)
def test_serve_refuses_bad_metrics_settings_at_startup(variables, message):
    result = run_cli("serve", "--port", "0", "--allow-anonymous", env=variables)
    assert result.returncode == 78, (result.returncode, result.stderr)
    assert message in result.stderr, result.stderr


def test_serve_says_when_the_metrics_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "serve", "--port", "0", "--allow-anonymous",
            env={"SOCKET_METRICS_PORT": str(port), "SOCKET_METRICS_HOST": "127.0.0.1"},
        )
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in result.stderr, result.stderr

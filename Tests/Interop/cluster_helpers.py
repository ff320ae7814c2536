"""Helpers for the cluster and CLI interop tests: the `socket-gateway` executable, `serve` processes, Redis URL.

The Redis server is the private one tools/test starts (SOCKET_GATEWAY_TEST_REDIS_URL); each test uses its own
channel so tests never see each other's messages.
"""

import asyncio
import json
import os
import secrets
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from processes import REPO, built_executable, read_listening_port, stop_gracefully

CLI = "socket-gateway"


def redis_url() -> str:
    url = os.environ.get("SOCKET_GATEWAY_TEST_REDIS_URL")
    if not url:
        pytest.fail(
            "SOCKET_GATEWAY_TEST_REDIS_URL is not set: run the suite with tools/test (it starts a private "
            "redis-server), or start redis-server yourself and export SOCKET_GATEWAY_TEST_REDIS_URL=redis://127.0.0.1:PORT"
        )
    return url


def new_channel() -> str:
    return "socketio-test-" + secrets.token_hex(4)


def cli_path() -> Path:
    """The built `socket-gateway` executable (SOCKET_GATEWAY_CLI, or the build's product)."""
    return built_executable(CLI, "SOCKET_GATEWAY_CLI")


def run_cli(*arguments: str, timeout: float = 30, env=None, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    """Runs `socket-gateway ARGUMENTS...` and returns the finished process (text output). stdin is /dev/null unless
    given (an open file), so `emit` never sees the test runner's stdin."""
    environment = dict(os.environ)
    environment.pop("REDIS_URL", None)
    environment.update(env or {})
    return subprocess.run(
        [str(cli_path()), *arguments], capture_output=True, text=True, timeout=timeout, env=environment, cwd=REPO,
        stdin=stdin,
    )


async def run_cli_async(*arguments: str, timeout: float = 30) -> tuple:
    """Runs the CLI without blocking the event loop; returns (returncode, stdout, stderr)."""
    environment = dict(os.environ)
    environment.pop("REDIS_URL", None)
    process = await asyncio.create_subprocess_exec(
        str(cli_path()), *arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, cwd=REPO
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, stdout.decode(), stderr.decode()


@dataclass
class ServeProcess:
    """A `socket-gateway serve` process on a free loopback port."""

    process: subprocess.Popen
    port: int
    secret: str
    log: Path
    url: str = field(init=False)

    def __post_init__(self):
        self.url = f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"

    def healthz(self) -> tuple:
        """(status, decoded JSON) of GET /healthz."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self):
        stop_gracefully(self.process, "serve", lambda: self.log_text()[-3000:])


def start_serve(tmp_path: Path, redis: str, channel: str, *extra: str) -> ServeProcess:
    secret = secrets.token_urlsafe(24)
    log = tmp_path / f"serve-{secrets.token_hex(3)}.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [str(cli_path()), "serve", "--port", "0", "--redis-url", redis, "--channel", channel,
             f"--token-secret={secret}", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
        )
    try:
        port = read_listening_port(process)
    except RuntimeError as error:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"serve: {error}\n{log.read_text(errors='replace')}")
    serve = ServeProcess(process=process, port=port, secret=secret, log=log)
    wait_until_subscribed(serve)
    return serve


def wait_until_subscribed(serve: ServeProcess) -> None:
    """Waits (bounded) until serve's Redis subscriber is subscribed, so no test emit is published before it
    listens; stops it and fails the test otherwise."""
    for _ in range(200):
        status, body = serve.healthz()
        if status == 200 and body.get("redis", {}).get("connected"):
            return
        time.sleep(0.05)
    serve.stop()
    pytest.fail(f"serve's Redis subscriber did not connect within 10 s\n{serve.log_text()}")

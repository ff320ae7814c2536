"""The README's "Deploying" recipe, tested: Debian's nginx (run as the test's own process, on a free loopback port)
in front of two `socket-gateway serve` processes that share the test Redis.

- WebSocket proxying and sticky long-polling (`hash $remote_addr consistent`): python-socketio clients bound to
  distinct loopback source addresses (127.0.0.2, …) land on both servers, over each transport, and an emit
  published on Redis (`socket-gateway emit`) reaches the clients of both;
- X-Forwarded-For is believed from nginx only (SOCKET_TRUSTED_PROXIES=127.0.0.1): the per-address connection
  limit applies per real client behind nginx, and a client talking to serve directly with a forged header is
  counted for its own address;
- a rolling restart: stopping one server (SIGTERM) sends its clients to the other, where they reconnect.
"""

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import time

import aiohttp
import pytest
import socketio

from cluster_helpers import (
    REPO, ServeProcess, cli_path, new_channel, redis_url, run_cli, start_serve, wait_until_subscribed,
)
from interop import Peer, mint_token, run
from processes import read_listening_port, start_on_free_port, wait_until_listening

# The configuration README.md's "Deploying" section shows (with its example addresses for {servers} and {listen});
# test_the_readme_shows_the_tested_nginx_config keeps the two equal. The tests fill in their own ports.
NGINX_HTTP_BLOCK = """\
map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}

upstream socket_gateway {
    # Sticky sessions: every request of a long-polling client must reach the server that holds its session.
    hash $remote_addr consistent;
    {servers}
}

server {
    listen {listen};

    location /socket.io/ {
        proxy_pass http://socket_gateway;
        proxy_http_version 1.1;
        # WebSocket: pass the upgrade on.
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        # Believed by socket-gateway only from addresses in SOCKET_TRUSTED_PROXIES.
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        # A WebSocket or a held long-polling GET is quiet between pings (25 s by default): keep it open.
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
        proxy_buffering off;
    }

    location = /healthz {
        proxy_pass http://socket_gateway;
    }
}
"""
README_SERVERS = "server 10.0.0.11:3000;\n    server 10.0.0.12:3000;"
README_LISTEN = "80"


class Nginx:
    """nginx -c <temp conf> -g 'daemon off;' with its pid, logs and temp files in the test's directory."""

    def __init__(self, tmp_path, backends):
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if nginx is None:
            pytest.fail("this test needs nginx (Debian: apt-get install nginx; tools/test installs it)")
        self.dir = tmp_path / f"nginx-{len(backends)}"
        self.dir.mkdir()
        self.nginx, self.backends = nginx, backends
        # Its port is chosen, not reported: another one when another process took it before nginx bound it.
        self.port, self.process = start_on_free_port("nginx", lambda port: (port, self._start(port)))
        self.url = f"http://127.0.0.1:{self.port}"

    def _start(self, port: int) -> subprocess.Popen:
        """nginx listening on `port`, once it has written its PID file (it does after binding its ports)."""
        servers = "\n    ".join(f"server 127.0.0.1:{backend};" for backend in self.backends)
        http_block = NGINX_HTTP_BLOCK.replace("{servers}", servers).replace("{listen}", f"127.0.0.1:{port}")
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp_paths = "".join(f"    {name}_temp_path {self.dir / name};\n" for name in kinds)
        # As root nginx hands its workers to `nobody`, who cannot read the test's directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf = self.dir / "nginx.conf"
        pid_file = self.dir / "nginx.pid"
        self.conf.write_text(
            f"{user}worker_processes 1;\npid {pid_file};\nerror_log {self.dir / 'error.log'} info;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {self.dir / 'access.log'};\n{temp_paths}{http_block}}}\n"
        )
        # A new attempt starts with empty logs: the last one's bind failure is not this one's.
        (self.dir / "error.log").unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
        self.log = open(self.dir / "stderr.log", "wb")
        process = subprocess.Popen(
            [self.nginx, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(self.conf),
             "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
        )

        def ready() -> bool:
            try:
                return pid_file.read_text().strip() == str(process.pid)
            except OSError:
                return False

        try:
            wait_until_listening(process, "nginx", port, ready, self.logs)
        except BaseException:
            self.log.close()
            raise
        return process

    def logs(self) -> str:
        texts = []
        for name in ("stderr.log", "error.log"):
            path = self.dir / name
            if path.exists():
                texts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(texts)

    def host_id_for(self, source: str) -> str:
        """The host_id of the server nginx sends `source`'s requests to (GET /healthz through nginx)."""
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(source, 0))
        with connection:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), answer[:300]
        return json.loads(body)["host_id"]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def session_from(source: str) -> aiohttp.ClientSession:
    """An aiohttp session whose connections leave from `source` (a loopback address), for both transports."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))


def test_nginx_in_front_of_two_servers_proxies_websocket_and_sticky_polling(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCKET_TRUSTED_PROXIES", "127.0.0.1")
    redis, channel = redis_url(), new_channel()
    servers = [start_serve(tmp_path, redis, channel), start_serve(tmp_path, redis, channel)]
    nginx = Nginx(tmp_path, [server.port for server in servers])
    try:
        # Which loopback source address lands on which server: one address per server.
        sources = {}
        for last in range(2, 60):
            source = f"127.0.0.{last}"
            sources.setdefault(nginx.host_id_for(source), source)
            if len(sources) == 2:
                break
        assert len(sources) == 2, f"every source address hashed to one server: {sources}"

        async def scenario():
            sessions, peers = [], []
            try:
                for index, (host, source) in enumerate(sorted(sources.items())):
                    for transport in ("websocket", "polling"):
                        session = session_from(source)
                        sessions.append(session)
                        server = next(s for s in servers if s.healthz()[1]["host_id"] == host)
                        peer = Peer(
                            nginx.url, mint_token(server.secret, "7"), transports=[transport],
                            http_session=session, name=f"{transport}-via-{source}",
                        )
                        peers.append(peer)
                        await peer.connect()
                        assert peer.sio.transport() == transport
                # A polling client's every request went to its server: it is still connected after a few polls.
                await asyncio.sleep(0.5)
                result = run_cli("emit", "--redis-url", redis, "--channel", channel, "--user", "7", "news", '"hi"')
                assert result.returncode == 0, result.stderr
                for peer in peers:
                    assert await peer.next("news") == ["hi"], peer.name
                assert all(peer.sio.connected for peer in peers)
            finally:
                for peer in peers:
                    await peer.close()
                for session in sessions:
                    await session.close()

        run(scenario())
    finally:
        nginx.stop()
        for server in servers:
            server.stop()


def raw_request(port: int, source: str, target: str) -> bytes:
    """The whole answer to `GET target` sent from `source` to 127.0.0.1:port on a connection of its own."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as connection:
        connection.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def raw_polling_handshake(port: int, source: str, forwarded_for: str) -> tuple:
    """(socket, answer) of an Engine.IO polling handshake from `source` straight to serve, claiming to be
    `forwarded_for`; the socket is left open (it holds a connection). The answer is b"" when the server closed it."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    connection.sendall(
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"X-Forwarded-For: {forwarded_for}\r\n\r\n".encode()
    )
    try:
        answer = connection.recv(65536)
    except ConnectionResetError:
        answer = b""
    return connection, answer


def test_forwarded_for_is_believed_from_the_trusted_proxy_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCKET_TRUSTED_PROXIES", "127.0.0.1")
    monkeypatch.setenv("SOCKET_MAX_CONNECTIONS_PER_ADDRESS", "1")
    redis, channel = redis_url(), new_channel()
    serve = start_serve(tmp_path, redis, channel)
    nginx = Nginx(tmp_path, [serve.port])
    held = []
    try:

        async def through_nginx():
            sessions = {source: session_from(source) for source in ("127.0.0.2", "127.0.0.3")}
            first = Peer(nginx.url, mint_token(serve.secret, "1"), http_session=sessions["127.0.0.2"], name="a1")
            second = Peer(nginx.url, mint_token(serve.secret, "1"), http_session=sessions["127.0.0.2"], name="a2")
            other = Peer(nginx.url, mint_token(serve.secret, "2"), http_session=sessions["127.0.0.3"], name="b")
            try:
                await first.connect()
                # Every connection reaches serve from nginx's 127.0.0.1: counted per real client, 127.0.0.2 is at
                # its limit of 1 and 127.0.0.3 is not.
                with pytest.raises(socketio.exceptions.ConnectionError):
                    await second.connect()
                # What a refused request gets through nginx: serve's 503, passed on.
                target = "/socket.io/?EIO=4&transport=polling"
                refused = await asyncio.to_thread(raw_request, nginx.port, "127.0.0.2", target)
                assert refused.startswith(b"HTTP/1.1 503"), refused[:300]
                await other.connect()
                assert first.sio.connected and other.sio.connected
            finally:
                for peer in (first, second, other):
                    await peer.close()
                for session in sessions.values():
                    await session.close()

        run(through_nginx())
        log = serve.log_text()
        refused = [line for line in log.splitlines() if "too many connections from its address" in line]
        assert refused and "127.0.0.2" in refused[0] and "127.0.0.1 " not in refused[0], log[-3000:]

        # Straight to serve from 127.0.0.5 (not a trusted proxy): its X-Forwarded-For is not believed.
        connection, answer = raw_polling_handshake(serve.port, "127.0.0.5", "198.51.100.1")
        held.append(connection)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        connection, answer = raw_polling_handshake(serve.port, "127.0.0.5", "198.51.100.2")
        held.append(connection)
        assert answer == b"", answer[:300]  # counted as 127.0.0.5, at its limit: closed unanswered
        connection, answer = raw_polling_handshake(serve.port, "127.0.0.6", "198.51.100.1")
        held.append(connection)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    finally:
        for connection in held:
            connection.close()
        nginx.stop()
        serve.stop()


def test_a_rolling_restart_moves_clients_to_the_other_server(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCKET_TRUSTED_PROXIES", "127.0.0.1")
    redis, channel = redis_url(), new_channel()
    servers = [start_serve(tmp_path, redis, channel), start_serve(tmp_path, redis, channel)]
    first_host = servers[0].healthz()[1]["host_id"]
    nginx = Nginx(tmp_path, [server.port for server in servers])
    try:
        source = next(
            (f"127.0.0.{last}" for last in range(2, 60) if nginx.host_id_for(f"127.0.0.{last}") == first_host), None
        )
        assert source is not None, "no source address hashed to the first server"

        async def scenario():
            session = session_from(source)
            # One secret for both servers would be usual; here each has its own, so the client's token names the
            # secret of the server it reconnects to (the auth callable is asked again on every reconnect).
            stopped = []
            client = socketio.AsyncClient(
                reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1, http_session=session
            )
            received = asyncio.Queue()
            reconnected = asyncio.Event()
            client.on("news", lambda *args: received.put_nowait(list(args)))
            connects = []

            async def on_connect():
                connects.append(time.monotonic())
                if len(connects) == 2:
                    reconnected.set()

            client.on("connect", on_connect)
            try:
                await client.connect(
                    nginx.url,
                    auth=lambda: {"token": mint_token(servers[1 if stopped else 0].secret, "5")},
                    transports=["websocket"],
                )
                stopped.append(True)
                servers[0].stop()  # SIGTERM: graceful; its clients are disconnected and reconnect through nginx
                await asyncio.wait_for(reconnected.wait(), 20)
                assert nginx.host_id_for(source) == servers[1].healthz()[1]["host_id"]
                result = run_cli("emit", "--redis-url", redis, "--channel", channel, "--user", "5", "news", '"back"')
                assert result.returncode == 0, result.stderr
                assert await asyncio.wait_for(received.get(), 10) == ["back"]
            finally:
                await client.disconnect()
                await session.close()

        run(scenario())
    finally:
        nginx.stop()
        for server in servers:
            server.stop()


def test_the_readme_shows_the_tested_nginx_config():
    readme = (REPO / "README.md").read_text()
    shown = NGINX_HTTP_BLOCK.replace("{servers}", README_SERVERS).replace("{listen}", README_LISTEN)
    assert shown in readme, "README.md's nginx config differs from the one Tests/Interop/test_nginx.py runs"


def test_the_readme_systemd_unit_verifies_and_its_settings_start_serve(tmp_path):
    """The README's unit passes `systemd-analyze verify` (with this build's executable and a secrets file of the
    test's), and `serve` started with its ExecStart arguments and Environment= lines listens, subscribes to Redis
    and stops with exit 0 on its KillSignal."""
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze is None:
        pytest.fail("this test needs systemd-analyze (Debian: apt-get install systemd; tools/test installs it)")
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### systemd"):readme.index("### Health and readiness")]
    unit = section[section.index("```ini\n") + len("```ini\n"):section.index("```", section.index("```ini\n") + 7)]
    secrets_file = tmp_path / "secrets.env"
    secret = secrets.token_urlsafe(32)
    secrets_file.write_text(f"SOCKET_TOKEN_SECRET={secret}\n")
    local = unit.replace("/usr/local/bin/socket-gateway", str(cli_path())).replace(
        "EnvironmentFile=/etc/socket-gateway/secrets.env", f"EnvironmentFile={secrets_file}"
    )
    assert local != unit
    instance = tmp_path / "socket-gateway@3001.service"
    instance.write_text(local)
    verified = subprocess.run(
        [systemd_analyze, "verify", str(instance)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr

    settings = dict(
        line.split("=", 1)[1].split("=", 1) for line in unit.splitlines() if line.startswith("Environment=")
    )
    assert set(settings) == {"HOST", "REDIS_URL", "SOCKET_TRUSTED_PROXIES"}
    settings["REDIS_URL"] = redis_url()
    settings["SOCKET_REDIS_CHANNEL"] = new_channel()
    settings["SOCKET_TOKEN_SECRET"] = secret
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    arguments = exec_start.split("=", 1)[1].split()[1:]
    assert arguments == ["serve", "--port", "%i"]
    arguments[-1] = "0"  # a free port instead of the instance name
    log = tmp_path / "unit-serve.log"
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SOCKET_", "REDIS_"))}
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [str(cli_path()), *arguments], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
            env={**environment, **settings},
        )
    try:
        serve = ServeProcess(process=process, port=read_listening_port(process), secret=secret, log=log)
    except RuntimeError as error:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"serve: {error}\n{log.read_text(errors='replace')}")
    wait_until_subscribed(serve)
    assert "KillSignal=SIGTERM" in unit
    serve.stop()  # SIGTERM; fails unless it exits 0

"""Redis Sentinel from the outside: `socket-gateway serve` and `emit` on a `redis+sentinel://` URL, and
python-socketio's AsyncRedisManager publishing through the same sentinels (its URL order, /db/name) to our server.

The deployment is private to this module: a primary, a replica (--replicaof) and three `redis-server --sentinel`
processes on free loopback ports, their files in a temporary directory; every wait is bounded."""

import shutil
import socket
import subprocess
import time

import pytest
import redis as redis_client
import socketio

from cluster_helpers import new_channel, run_cli, start_serve
from interop import Peer, close_all, connect_all, mint_token, run

PRIMARY = "mymaster"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, condition, seconds: float, log=lambda: ""):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except redis_client.RedisError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{what} within {seconds} s\n{log()}")


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory):
    """Yields the sentinel ports; the primary's is `sentinels.primary`."""
    redis_server = shutil.which("redis-server")
    assert redis_server, "redis-server is needed (tools/test installs it)"
    directory = tmp_path_factory.mktemp("sentinel")
    processes = []

    def spawn(arguments, log_name):
        log = open(directory / log_name, "wb")
        processes.append(subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    def log():
        path = directory / "sentinel-0.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    try:
        primary, replica = free_port(), free_port()
        for port, extra in ((primary, []), (replica, ["--replicaof", "127.0.0.1", str(primary)])):
            spawn([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(directory), *extra], f"redis-{port}.log")
        wait_for("the replica did not sync", lambda: redis_client.Redis(port=replica).info("replication")
                 .get("master_link_status") == "up", 20)
        ports = [free_port() for _ in range(3)]
        for index, port in enumerate(ports):
            conf = directory / f"sentinel-{index}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {PRIMARY} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {PRIMARY} 1000\nsentinel failover-timeout {PRIMARY} 3000\n"
            )
            spawn([redis_server, str(conf), "--sentinel"], f"sentinel-{index}.log")

        def settled():
            for port in ports:
                client = redis_client.Redis(port=port, decode_responses=True)
                if len(client.execute_command("SENTINEL", "SENTINELS", PRIMARY)) != 2:
                    return False
                if not client.execute_command("SENTINEL", "REPLICAS", PRIMARY):
                    return False
            return True

        wait_for("the sentinels did not see each other and the replica", settled, 30, log)
        yield type("Sentinels", (), {"ports": ports, "primary": primary})
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)


def our_url(ports) -> str:
    return "redis+sentinel://" + ",".join(f"127.0.0.1:{port}" for port in ports) + f"/{PRIMARY}/0"


def test_serve_and_emit_on_a_sentinel_url(tmp_path, sentinels):
    """serve (--redis-url) and emit (REDIS_URL) find the primary through the sentinels; a dead first sentinel is
    skipped; an unknown primary name fails in one clear line."""
    channel = new_channel()
    url = our_url([free_port(), *sentinels.ports])
    serve = start_serve(tmp_path, url, channel)

    async def scenario():
        alice = Peer(serve.url, mint_token(serve.secret, "alice"), name="alice")
        try:
            await connect_all([alice])
            emitted = run_cli("emit", "--broadcast", "ping", '{"via":"sentinel"}',
                              env={"REDIS_URL": url, "SOCKET_REDIS_CHANNEL": channel})
            assert emitted.returncode == 0, emitted.stderr
            assert emitted.stdout == f"published ping to everyone in / on channel {channel}: 1 subscriber(s)\n"
            assert await alice.next("ping") == [{"via": "sentinel"}]
        finally:
            await close_all([alice])

    try:
        run(scenario())
        # It is the primary the sentinels name that carries the server's subscription.
        assert redis_client.Redis(port=sentinels.primary).pubsub_numsub(channel) == [(channel.encode(), 1)]
    finally:
        serve.stop()

    unknown = our_url(sentinels.ports).replace(f"/{PRIMARY}/", "/nosuch/")
    result = run_cli("emit", "--redis-url", unknown, "--timeout", "1", "--broadcast", "ping")
    assert result.returncode != 0 and result.stdout == ""
    assert "no sentinel knows primary 'nosuch'" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_python_publisher_through_sentinel_reaches_a_swift_server(tmp_path, sentinels):
    """python-socketio's AsyncRedisManager on its own sentinel URL form (/db/service_name) and our server on ours
    meet on the same primary."""
    channel = new_channel()
    serve = start_serve(tmp_path, our_url(sentinels.ports), channel)
    python_url = "redis+sentinel://" + ",".join(f"127.0.0.1:{port}" for port in sentinels.ports) + f"/0/{PRIMARY}"

    async def scenario():
        alice = Peer(serve.url, mint_token(serve.secret, "alice"), name="alice")
        manager = socketio.AsyncRedisManager(python_url, channel=channel, write_only=True)
        try:
            await connect_all([alice])
            await manager.emit("from-python", {"through": "sentinel"}, room="user:alice")
            assert await alice.next("from-python") == [{"through": "sentinel"}]
        finally:
            await close_all([alice])

    try:
        run(scenario())
    finally:
        serve.stop()

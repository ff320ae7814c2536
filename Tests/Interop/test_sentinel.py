"""Redis Sentinel from the outside: `socket-gateway serve` and `emit` on a `redis+sentinel://` URL, and
python-socketio's AsyncRedisManager publishing through the same sentinels (its URL order, /db/name) to our server.

The deployment is private to this module: a primary, a replica (--replicaof) and three `redis-server --sentinel`
processes on free loopback ports, their files in a temporary directory; every wait is bounded."""

import time

import pytest
import redis as redis_client
import socketio

from cluster_helpers import new_channel, run_cli, start_serve
from interop import Peer, close_all, connect_all, mint_token, run
from processes import free_port, start_on_free_port, start_redis, stop_process

PRIMARY = "mymaster"


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
    directory = tmp_path_factory.mktemp("sentinel")
    processes = []

    def log():
        path = directory / "sentinel-0.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def data_node(name, extra):
        def start(port):
            return port, start_redis(
                name, ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                       "--dir", str(directory), *extra], port, directory / f"{name}.log",
            )
        port, process = start_on_free_port(name, start)
        processes.append(process)
        return port

    def sentinel(index):
        def start(port):
            conf = directory / f"sentinel-{index}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {PRIMARY} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {PRIMARY} 1000\nsentinel failover-timeout {PRIMARY} 3000\n"
            )
            return port, start_redis(f"sentinel-{index}", [str(conf), "--sentinel"], port,
                                     directory / f"sentinel-{index}.log")
        port, process = start_on_free_port(f"sentinel-{index}", start)
        processes.append(process)
        return port

    try:
        primary = data_node("primary", [])
        replica = data_node("replica", ["--replicaof", "127.0.0.1", str(primary)])
        wait_for("the replica did not sync", lambda: redis_client.Redis(port=replica).info("replication")
                 .get("master_link_status") == "up", 20)
        ports = [sentinel(index) for index in range(3)]

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
            stop_process(process)


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

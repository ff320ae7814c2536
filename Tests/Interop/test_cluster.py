"""Cross-process emits over Redis, in python-socketio's pub/sub format, in both directions:

- the Swift worker (`socket-gateway emit`) -> Swift server (`socket-gateway serve`) -> python-socketio client;
- python-socketio's AsyncRedisManager(write_only=True) -> Swift server -> python-socketio client;
- the Swift worker -> python-socketio AsyncServer(client_manager=AsyncRedisManager) -> python-socketio client;
- a server subscriber killed by Redis (CLIENT KILL TYPE pubsub) comes back and /healthz says so.
"""

import asyncio
import time

import pytest
import redis.asyncio as aioredis
import socketio
from aiohttp import web

from cluster_helpers import new_channel, redis_url, run_cli_async, start_serve
from interop import Peer, close_all, connect_all, mint_token, run


@pytest.fixture
def redis():
    return redis_url()


@pytest.fixture
def channel():
    return new_channel()


async def emit_cli(redis, channel, *arguments):
    code, out, err = await run_cli_async("emit", "--redis-url", redis, "--channel", channel, *arguments)
    assert code == 0, f"socket-gateway emit {arguments} exited {code}: {err}"
    assert out.startswith("published "), out
    return out


async def fence(peers, redis, channel, marker):
    """Broadcasts a marker through Redis and waits for it on every peer: everything emitted before has arrived."""
    await emit_cli(redis, channel, "--broadcast", "fence", f'"{marker}"')
    for peer in peers:
        assert await peer.next("fence") == [marker]


def test_cli_worker_emits_reach_python_clients_of_a_swift_server(tmp_path, redis, channel):
    serve = start_serve(tmp_path, redis, channel)

    async def scenario():
        alice = Peer(serve.url, mint_token(serve.secret, "alice"), name="alice")
        alice2 = Peer(serve.url, mint_token(serve.secret, "alice"), ["polling"], name="alice-polling")
        bob = Peer(serve.url, mint_token(serve.secret, "bob"), name="bob")
        peers = [alice, alice2, bob]
        try:
            await connect_all(peers)
            # To a user room: both of alice's sockets, not bob.
            out = await emit_cli(redis, channel, "--user", "alice", "sheet:sync:completed", '{"sheet_id":"s1","rows":3}')
            assert "to user:alice" in out and "1 subscriber(s)" in out, out
            assert await alice.next("sheet:sync:completed") == [{"sheet_id": "s1", "rows": 3}]
            assert await alice2.next("sheet:sync:completed") == [{"sheet_id": "s1", "rows": 3}]

            # A named room, joined through python-socketio's write-only manager (enter_room message).
            manager = socketio.AsyncRedisManager(redis, channel=channel, write_only=True)
            await manager.enter_room(bob.sid(), "/", "sheet:s1")
            await fence(peers, redis, channel, "after-enter")
            await emit_cli(redis, channel, "--room", "sheet:s1", "progress", '{"percent":50}')
            assert await bob.next("progress") == [{"percent": 50}]

            # Broadcast except a room and a sid.
            await emit_cli(redis, channel, "--broadcast", "--except", "sheet:s1", f"--except={alice2.sid()}", "news", "[1,2]")
            assert await alice.next("news") == [[1, 2]]
            await fence(peers, redis, channel, "after-news")
            assert bob.pending("news") == [] and alice2.pending("news") == []
            assert bob.pending("sheet:sync:completed") == []
        finally:
            await close_all(peers)

    try:
        run(scenario())
    finally:
        serve.stop()


def test_python_write_only_manager_reaches_a_swift_server(tmp_path, redis, channel):
    serve = start_serve(tmp_path, redis, channel, "--namespace", "/admin")

    async def scenario():
        a = Peer(serve.url, mint_token(serve.secret, "u-a"), name="a")
        b = Peer(serve.url, mint_token(serve.secret, "u-b"), ["polling"], name="b")
        peers = [a, b]
        manager = socketio.AsyncRedisManager(redis, channel=channel, write_only=True)
        try:
            await connect_all(peers, namespaces=("/", "/admin"))
            await manager.emit("to-room", {"x": 1}, room="user:u-a")
            assert await a.next("to-room") == [{"x": 1}]
            await manager.emit("to-sid", "hello", room=b.sid())
            assert await b.next("to-sid") == ["hello"]
            await manager.emit("all", (1, "two", [3]))
            assert await a.next("all") == [1, "two", [3]]
            assert await b.next("all") == [1, "two", [3]]
            await manager.emit("skip", "s", skip_sid=a.sid())
            await manager.emit("skip-list", "s", skip_sid=[a.sid(), b.sid()])
            await manager.emit("rooms", "r", room=["user:u-a", "user:u-b"])
            assert await b.next("skip") == ["s"]
            assert await a.next("rooms") == ["r"]
            assert await b.next("rooms") == ["r"]
            assert a.pending("skip") == [] and a.pending("skip-list") == [] and b.pending("skip-list") == []
            await manager.emit("blob", {"name": "f", "data": b"\x00\x01\xff"}, room=a.sid())
            assert await a.next("blob") == [{"name": "f", "data": b"\x00\x01\xff"}]
            await manager.emit("admin-only", {"ok": True}, namespace="/admin")
            assert await a.next("admin-only", namespace="/admin") == [{"ok": True}]
            assert await b.next("admin-only", namespace="/admin") == [{"ok": True}]
            assert a.pending("admin-only") == []
            # close_room and disconnect for clients of the Swift server.
            await manager.enter_room(a.sid(), "/", "temp")
            await manager.close_room("temp", namespace="/")
            await manager.emit("to-temp", 1, room="temp")
            await manager.emit("marker", 2)
            assert await a.next("marker") == [2]
            assert a.pending("to-temp") == []
            # A write-only manager publishes a disconnect for a client it does not hold through can_disconnect.
            await manager.can_disconnect(b.sid("/admin"), "/admin")
            assert await b.wait_disconnect() == ("/admin", "server disconnect")
        finally:
            await close_all(peers)

    try:
        run(scenario())
    finally:
        serve.stop()


def test_swift_worker_reaches_a_python_socketio_server(redis, channel):
    async def scenario():
        sio = socketio.AsyncServer(
            async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(redis, channel=channel)
        )

        @sio.event
        async def connect(sid, environ, auth):
            await sio.enter_room(sid, "team")

        app = web.Application()
        sio.attach(app)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        a, b = Peer(url, name="a"), Peer(url, ["polling"], name="b")
        try:
            await connect_all([a, b])
            # python-socketio's listener subscribes in the background: wait (bounded) until it has.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                out = await emit_cli(redis, channel, "--broadcast", "ready", "1")
                if "0 subscriber(s)" not in out:
                    break
                await asyncio.sleep(0.1)
            assert await a.next("ready") == [1]
            await emit_cli(redis, channel, "--room", "team", f"--except={a.sid()}", "to-team", '{"v":"x"}')
            assert await b.next("to-team") == [{"v": "x"}]
            await emit_cli(redis, channel, f"--room={a.sid()}", "direct", '"only-a"')
            assert await a.next("direct") == ["only-a"]
            assert a.pending("to-team") == [] and b.pending("direct") == []
        finally:
            await close_all([a, b])
            await runner.cleanup()

    run(scenario())


def test_killed_subscriber_comes_back_and_healthz_says_so(tmp_path, redis, channel):
    serve = start_serve(tmp_path, redis, channel)

    async def scenario():
        status, health = serve.healthz()
        assert status == 200 and health["status"] == "ok" and health["redis"]["reconnects"] == 0, health
        connection = redis_module_client(redis)
        try:
            killed = await connection.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            assert killed >= 1
        finally:
            await connection.aclose()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, health = serve.healthz()
            if status == 200 and health["redis"]["connected"] and health["redis"]["reconnects"] >= 1:
                break
            await asyncio.sleep(0.05)
        assert health["redis"]["reconnects"] == 1 and health["redis"]["connected"], health
        assert "resubscribed to Redis" in serve.log_text()
        peer = Peer(serve.url, mint_token(serve.secret, "k"), name="k")
        try:
            await peer.connect()
            await emit_cli(redis, channel, "--user", "k", "back", "true")
            assert await peer.next("back") == [True]
        finally:
            await peer.close()

    try:
        run(scenario())
    finally:
        serve.stop()


def redis_module_client(url):
    return aioredis.from_url(url)


def test_python_server_emit_with_callback_to_a_client_of_a_swift_server(tmp_path, redis, channel):
    """python-socketio's cross-host callback: the Swift server delivers with an ack id and publishes `callback`."""
    serve = start_serve(tmp_path, redis, channel)

    async def scenario():
        sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(redis, channel=channel))
        app = web.Application()
        sio.attach(app)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        peer = Peer(serve.url, mint_token(serve.secret, "cb"), name="cb")
        peer.answers["question"] = lambda value: {"answer": value * 2}
        # python-socketio starts its Redis listener when its first client connects.
        local = Peer(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", name="python-side")
        try:
            await connect_all([peer, local])
            # Wait (bounded) until python-socketio's listener is subscribed (2 subscribers on the channel).
            client = aioredis.from_url(redis)
            try:
                subscribers = 0
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and subscribers < 2:
                    subscribers = int((await client.execute_command("PUBSUB", "NUMSUB", channel))[1])
                    await asyncio.sleep(0.05)
                assert subscribers == 2, f"{subscribers} subscribers on {channel}"
            finally:
                await client.aclose()
            answered = asyncio.get_running_loop().create_future()
            await sio.emit("question", 21, to=peer.sid(), callback=lambda *args: answered.set_result(list(args)))
            assert await peer.next("question") == [21]
            assert await asyncio.wait_for(answered, 10) == [{"answer": 42}]
        finally:
            await close_all([peer, local])
            await runner.cleanup()

    try:
        run(scenario())
    finally:
        serve.stop()

"""Connection state recovery, end to end on both transports, with a client that recovers as socket.io-client does
(recovering_client.py), against an interop server of its own started with SOCKET_RECOVERY_WINDOW (recovery changes
what every emit carries, so the suite's shared server keeps it off)."""

import asyncio
import secrets

import pytest

from interop import WAIT, Peer, close_all, connect_all, mint_token, run
from processes import interop_server
from recovering_client import RecoveringClient

WINDOW_SECONDS = 2.0


@pytest.fixture(scope="module")
def recovery_server(tmp_path_factory):
    yield from interop_server(tmp_path_factory, "recovery-server", SOCKET_RECOVERY_WINDOW=str(WINDOW_SECONDS))


@pytest.fixture(scope="module")
def skipping_server(tmp_path_factory):
    """Recovery with SOCKET_RECOVERY_SKIP_MIDDLEWARES=on (socket.io's `skipMiddlewares`)."""
    yield from interop_server(
        tmp_path_factory,
        "recovery-skipping-server",
        SOCKET_RECOVERY_WINDOW=str(WINDOW_SECONDS),
        SOCKET_RECOVERY_SKIP_MIDDLEWARES="on",
    )


async def until_gone(sender: Peer, room: str, namespace: str = "/"):
    """Waits (bounded) until the server has ended the lost connection: a probe emit to its room reaches nobody."""
    for _ in range(int(WAIT / 0.05)):
        probe = {"room": room, "event": "probe", "data": None, "namespace": namespace}
        answer = await sender.request("to-room", probe)
        if answer[0]["delivered"] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server still has a member in {room}")


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_client_back_in_time_gets_its_sid_rooms_and_missed_events_in_order(recovery_server, transport):
    url, secret = recovery_server.url, recovery_server.secret

    async def scenario():
        room = f"train-{transport}-{secrets.token_hex(4)}"
        client = RecoveringClient(url, mint_token(secret, f"rider-{transport}"), transport)
        sender = Peer(url, mint_token(secret, "sender"), ["websocket"], name="sender")
        try:
            await connect_all([sender])
            await client.connect()
            assert client.pid and not client.recovered
            await client.call("join", room)
            await sender.request("to-room", {"room": room, "event": "news", "data": 0})
            await client.wait_for_events(1)
            sid, pid, offset = client.sid, client.pid, client.last_offset
            assert offset, "events carry an offset as their last argument"

            await client.lose_connection()
            await until_gone(sender, room)
            for number in (1, 2, 3):
                await sender.request("to-room", {"room": room, "event": "news", "data": number})
            await sender.request("broadcast", {"event": "all", "data": "everyone", "except": []})

            await client.connect()
            assert client.sid == sid and client.pid == pid and client.recovered
            assert await client.call("recovered") == [True]
            events = await client.wait_for_events(5)
            assert events == [
                ("news", [0]),
                ("news", [1]),
                ("news", [2]),
                ("news", [3]),
                ("all", ["everyone"]),
            ]
            # The room came back without a join: a room emit reaches it, once.
            assert room in (await client.call("rooms"))[0]
            await sender.request("to-room", {"room": room, "event": "news", "data": 4})
            events = await client.wait_for_events(6)
            await asyncio.sleep(0.2)  # anything duplicated would have arrived by now
            news = [args[0] for event, args in client.events if event == "news"]
            assert news == [0, 1, 2, 3, 4]
        finally:
            await client.close()
            await close_all([sender])

    run(scenario())


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_client_back_after_the_window_gets_a_fresh_session(recovery_server, transport):
    url, secret = recovery_server.url, recovery_server.secret

    async def scenario():
        room = f"late-{transport}-{secrets.token_hex(4)}"
        client = RecoveringClient(url, mint_token(secret, f"late-{transport}"), transport)
        sender = Peer(url, mint_token(secret, "sender2"), ["websocket"], name="sender")
        try:
            await connect_all([sender])
            await client.connect()
            await client.call("join", room)
            await sender.request("to-room", {"room": room, "event": "news", "data": 0})
            await client.wait_for_events(1)
            sid, pid = client.sid, client.pid

            await client.lose_connection()
            await until_gone(sender, room)
            await sender.request("to-room", {"room": room, "event": "news", "data": 1})
            await asyncio.sleep(WINDOW_SECONDS + 1.0)

            await client.connect()
            assert client.sid != sid and client.pid != pid and not client.recovered
            assert await client.call("recovered") == [False]
            assert room not in (await client.call("rooms"))[0]
            await asyncio.sleep(0.2)
            assert [args for event, args in client.events if event == "news"] == [[0]]
        finally:
            await client.close()
            await close_all([sender])

    run(scenario())


def test_a_client_that_left_on_purpose_is_not_recovered(recovery_server):
    url, secret = recovery_server.url, recovery_server.secret

    async def scenario():
        client = RecoveringClient(url, mint_token(secret, "leaver"), "websocket")
        try:
            await client.connect()
            sid = client.sid
            await client.emit("echo", "hi")  # an event with an offset: the client could ask for recovery
            await client.wait_for_events(1)
            assert client.last_offset
            await client._send("41")  # Socket.IO DISCONNECT: the client leaves the namespace
            await client._ws.close()  # a close frame after it, in order (an abort could discard the DISCONNECT)
            await client._stop_reader()
            await client.connect()
            assert client.sid != sid and not client.recovered
        finally:
            await client.close()

    run(scenario())


async def lose_and_wait_until_gone(client: RecoveringClient, url: str, secret: str):
    """Loses `client`'s connection and waits (bounded) until the server has ended it."""
    sender = Peer(url, mint_token(secret, "watcher"), ["websocket"], name="watcher")
    try:
        await connect_all([sender])
        await client.lose_connection()
        await until_gone(sender, client.sid, "/mw")
    finally:
        await close_all([sender])


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_socket_data_comes_back_with_the_session_under_what_the_middlewares_set(recovery_server, transport):
    """`/mw`'s onAny keeps every incoming event in the socket data; the middlewares rebuild only their trace."""
    url, secret = recovery_server.url, recovery_server.secret

    async def scenario():
        client = RecoveringClient(url, mint_token(secret, f"data-{transport}"), transport, namespace="/mw")
        try:
            await client.connect()
            await client.call("echo", "before")  # recorded by onAny; the echo back carries an offset
            await client.wait_for_events(1)
            sid = client.sid
            await lose_and_wait_until_gone(client, url, secret)

            await client.connect()
            assert client.sid == sid and client.recovered
            [me] = await client.call("whoami")
            assert ["echo", ["before"]] in me["data"]["incoming"], me
            # The middlewares ran again: their trace is theirs, then onConnect's.
            assert me["data"]["trace"] == [f"server:data-{transport}", "namespace", "connect"], me
        finally:
            await client.close()

    run(scenario())


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_skip_middlewares_recovers_without_running_them(skipping_server, recovery_server, transport):
    """With skipMiddlewares a recovering client with a token the authenticator would refuse gets its session,
    user and data back, and no middleware runs; without it, that client is refused."""

    async def scenario(server, skip):
        url, secret = server.url, server.secret
        user = f"skip-{skip}-{transport}"
        client = RecoveringClient(url, mint_token(secret, user), transport, namespace="/mw")
        try:
            await client.connect()
            await client.call("echo", "before")
            await client.wait_for_events(1)
            sid = client.sid
            await lose_and_wait_until_gone(client, url, secret)

            client.token = "not-a-valid-token"
            await client.connect()
            if not skip:
                assert client.sid is None and client.connect_error == {"message": "Unauthorized"}
                return
            assert client.sid == sid and client.recovered
            [me] = await client.call("whoami")
            assert me["user"] == user
            # Restored as it was: no middleware added to the trace, onConnect ran again.
            assert me["data"]["trace"] == [f"server:{user}", "namespace", "connect", "connect"], me
            assert ["echo", ["before"]] in me["data"]["incoming"], me

            # A failed recovery (an unknown pid) runs the middlewares: refused.
            fresh = RecoveringClient(url, "not-a-valid-token", transport, namespace="/mw")
            fresh.pid, fresh.last_offset = "unknown-pid", client.last_offset
            try:
                await fresh.connect()
                assert fresh.sid is None and fresh.connect_error == {"message": "Unauthorized"}
            finally:
                await fresh.close()
        finally:
            await client.close()

    run(scenario(skipping_server, True))
    run(scenario(recovery_server, False))

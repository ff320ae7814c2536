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


async def until_gone(sender: Peer, room: str):
    """Waits (bounded) until the server has ended the lost connection: a probe emit to its room reaches nobody."""
    for _ in range(int(WAIT / 0.05)):
        answer = await sender.request("to-room", {"room": room, "event": "probe", "data": None})
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

"""Broadcast with acks (SocketGateway.broadcastWithAck): python-socketio clients on both transports answer."""

import asyncio

from interop import Peer, close_all, connect_all, mint_token, run


def test_broadcast_with_acks_collects_answers_over_both_transports(server):
    async def scenario():
        ws = Peer(server.url, mint_token(server.secret, "ack-ws"), ["websocket"], name="ack-ws")
        polling = Peer(server.url, mint_token(server.secret, "ack-polling"), ["polling"], name="ack-polling")
        silent = Peer(server.url, mint_token(server.secret, "ack-silent"), ["websocket"], name="ack-silent")
        excluded = Peer(server.url, mint_token(server.secret, "ack-excluded"), ["polling"], name="ack-excluded")
        ws.answers["census"] = lambda data: {"n": data["n"] + 1, "via": "websocket"}
        polling.answers["census"] = lambda data: {"n": data["n"] + 2, "via": "polling"}
        excluded.answers["census"] = lambda data: "must not be asked"

        result_seen = asyncio.Event()

        async def too_late(data):
            # python-socketio always answers an ack request (with no arguments when the handler returns None), so
            # the client that does not answer in time is one that answers only after the server gave up.
            await result_seen.wait()
            return "too late"

        silent.answers["census"] = too_late
        peers = [ws, polling, silent, excluded]
        try:
            await connect_all(peers)
            for peer in peers:
                assert "census-room" in (await peer.request("join", "census-room"))[0]
            request = {
                "event": "census",
                "data": {"n": 40},
                "room": "census-room",
                "except": [excluded.sid()],
                "timeoutMs": 4000,
            }
            assert await ws.request("ask-room", request) == [True]
            result = (await ws.next("ask-room-result", timeout=20))[0]
            result_seen.set()
            assert result["answers"] == {
                ws.sid(): [{"n": 41, "via": "websocket"}],
                polling.sid(): [{"n": 42, "via": "polling"}],
            }, result
            assert result["missing"] == {silent.sid(): "timeout"}, result
            assert result["servers"] == ["local"], result
            assert await silent.next("census") == [{"n": 40}]
            assert excluded.pending("census") == []
            # The late answer is ignored and the client's connection keeps working.
            await asyncio.sleep(0.3)
            assert await silent.request("echo-ack", "still here") == ["still here"]
        finally:
            await close_all(peers)

    run(scenario())


def test_broadcast_with_acks_to_an_empty_room_returns_at_once(server):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "ack-empty"), ["websocket"], name="ack-empty")
        try:
            await connect_all([peer])
            request = {"event": "census", "data": 1, "room": "nobody-here", "timeoutMs": 600000}
            assert await peer.request("ask-room", request) == [True]
            result = (await peer.next("ask-room-result"))[0]
            assert result == {"answers": {}, "missing": {}, "servers": ["local"]}
        finally:
            await close_all([peer])

    run(scenario())

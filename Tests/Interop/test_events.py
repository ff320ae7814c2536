"""Events and acknowledgements both ways, binary attachments both ways."""

import asyncio

from interop import Peer, mint_token, run

ARGS = [1, "two", {"three": [True, None, 1.5, -7], "four": {"nested": "ü"}}, [], {}]


def test_client_event_and_ack(server, transports):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "erin"), transports, name="erin")
        try:
            await peer.connect()
            assert await peer.request("echo-ack", *ARGS) == ARGS
            assert await peer.request("echo-ack") == []

            # `echo` answers with an event (and an ack) carrying the same arguments, in order.
            assert await peer.request("echo", *ARGS) == ARGS
            assert await peer.next("echo") == ARGS
            for index in range(10):
                await peer.sio.emit("echo", data=(index,))
            assert [(await peer.next("echo"))[0] for _ in range(10)] == list(range(10))
        finally:
            await peer.close()

    run(scenario())


def test_burst_of_events_reaches_a_python_client_intact(server, transports):
    """40 events sent back to back, answered by 40 emits, all arrive in order and the client stays connected.

    Over polling this checks a python-engineio limit: its client rejects a GET response holding more than 16
    packets (`Payload.max_decode_packets`) and drops the connection, so the server must not batch more than
    that into one response. (The client itself may POST more than 16 packets at once; the server accepts them.)
    """

    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "burst"), transports, name="burst")
        try:
            await peer.connect()
            for index in range(40):
                await peer.sio.emit("echo", data=(index,))
            assert [(await peer.next("echo"))[0] for _ in range(40)] == list(range(40))
            assert peer.sio.connected
            assert await peer.request("echo-ack", "done") == ["done"]
        finally:
            await peer.close()

    run(scenario())


def test_server_emit_with_ack(server, transports):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "frank"), transports, name="frank")
        peer.answers["question"] = lambda data: {"answer": data["n"] + 1, "from": "python"}
        try:
            await peer.connect()
            assert await peer.request("ask", {"event": "question", "data": {"n": 41}, "timeoutMs": 5000}) == [True]
            assert await peer.next("question") == [{"n": 41}]
            result = (await peer.next("ask-result"))[0]
            assert result == {"ok": True, "args": [{"answer": 42, "from": "python"}]}
        finally:
            await peer.close()

    run(scenario())


def test_server_emit_with_ack_times_out(server, transports):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "gina"), transports, name="gina")
        answered = asyncio.Event()

        async def slow_answer(data):
            await asyncio.sleep(1.5)
            answered.set()
            return "too late"

        peer.answers["slow"] = slow_answer
        try:
            await peer.connect()
            await peer.request("ask", {"event": "slow", "data": 1, "timeoutMs": 200})
            result = (await peer.next("ask-result", timeout=10))[0]
            assert result["ok"] is False, result
            assert isinstance(result["error"], str) and result["error"], result
            # The late ack arrives after the server gave up; it is ignored and the connection keeps working.
            await asyncio.wait_for(answered.wait(), 10)
            await asyncio.sleep(0.3)
            assert await peer.request("echo-ack", "still here") == ["still here"]
            assert peer.pending("ask-result") == []
            assert peer.sio.connected
        finally:
            await peer.close()

    run(scenario())


def test_binary_both_ways(server, transports):
    blob = bytes(range(256)) * 64  # 16 KiB, every byte value
    args = [b"\x00\x01\xfe\xff", {"file": blob, "name": "b.bin", "parts": [b"a", b"bc"]}, "text", 3]

    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "hank"), transports, name="hank")
        peer.answers["want-bytes"] = lambda data: {"echo": data, "extra": b"\xde\xad\xbe\xef"}
        try:
            await peer.connect()
            # client → server (binary event with ack) and server → client (binary ack and binary event)
            assert await peer.request("binary-echo", *args) == args
            assert await peer.next("binary-echo") == args

            # server → client binary emit with an ack request; the client answers with binary
            await peer.request("ask", {"event": "want-bytes", "data": b"\x10\x20", "timeoutMs": 5000})
            assert await peer.next("want-bytes") == [b"\x10\x20"]
            result = (await peer.next("ask-result"))[0]
            assert result == {"ok": True, "args": [{"echo": b"\x10\x20", "extra": b"\xde\xad\xbe\xef"}]}

            # text traffic still flows after binary packets
            assert await peer.request("echo-ack", "after") == ["after"]
        finally:
            await peer.close()

    run(scenario())

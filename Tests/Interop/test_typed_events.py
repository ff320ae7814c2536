"""Typed client→server handlers and typed acks both ways, driven by python-socketio.

The interop server registers generated types of its catalog (Tests/InteropServer/events.yaml) with
`namespace.on(TypedSyncRequest.self) { socket, request, ack in … }`: a valid payload reaches the handler decoded
and the client gets the typed ack; an invalid one is refused by the server itself, in the ack when the client asked
for one and otherwise as the `socketgateway:error` event, and the connection stays usable.
"""

from interop import Peer, mint_token, run


def test_a_valid_client_payload_gets_the_typed_ack(server, transports):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "tina"), transports, name="tina")
        try:
            await peer.connect()
            answer = await peer.request("typed:sync:request", {"sheet_id": "s1", "priority": "high", "tags": ["a"]})
            assert answer == [{"job_id": "job-s1-1", "sheet_id": "s1", "priority": "high"}]
            # The absent optional field arrives as nil and the handler picks its default.
            answer = await peer.request("typed:sync:request", {"sheet_id": "s2", "tags": []})
            assert answer == [{"job_id": "job-s2-0", "sheet_id": "s2", "priority": "normal"}]
            # An event without an ack in the catalog reaches its typed handler too.
            await peer.sio.emit("typed:note", {"text": "hello"})
            assert await peer.next("typed:note:seen") == [{"text": "hello"}]
        finally:
            await peer.close()

    run(scenario())


def test_an_invalid_client_payload_is_refused_and_the_connection_stays_usable(server, transports):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "ivan"), transports, name="ivan")
        bystander = Peer(server.url, mint_token(server.secret, "bea"), transports, name="bea")
        try:
            await peer.connect()
            await bystander.connect()
            # With an ack: the refusal is the ack.
            answer = await peer.request("typed:sync:request", {"sheet_id": "s1", "priority": "urgent", "tags": []})
            assert answer == [
                {
                    "error": "invalid_payload",
                    "event": "typed:sync:request",
                    "path": "$.priority",
                    "message": "typed:sync:request: invalid value at $.priority: "
                    "expected one of 'low', 'normal', 'high', found 'urgent'",
                }
            ]
            answer = await peer.request("typed:sync:request", {"sheet_id": "s1", "tags": ["a", 2]})
            assert answer[0]["error"] == "invalid_payload" and answer[0]["path"] == "$.tags[1]"

            # Without an ack: the refusal is the socketgateway:error event, to this client only.
            await peer.sio.emit("typed:note", {"text": 42})
            [refusal] = await peer.next("socketgateway:error")
            assert refusal == {
                "error": "invalid_payload",
                "event": "typed:note",
                "path": "$.text",
                "message": "typed:note: wrong type at $.text: expected a string, found a number",
            }
            assert peer.sio.connected
            answer = await peer.request("typed:sync:request", {"sheet_id": "s3", "tags": []})
            assert answer == [{"job_id": "job-s3-0", "sheet_id": "s3", "priority": "normal"}]
            assert await bystander.request("echo-ack", "ok") == ["ok"]
            assert not any(event == "socketgateway:error" for _, event, _ in bystander.received)
        finally:
            await peer.close()
            await bystander.close()

    run(scenario())


def test_server_emit_with_ack_decodes_the_clients_typed_answer(server, transports):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "pia"), transports, name="pia")
        peer.answers["typed:ping"] = lambda data: {"nonce": data["nonce"], "received_by": "python"}
        try:
            await peer.connect()
            await peer.sio.emit("typed:ask-ping", {"nonce": 41})
            assert await peer.next("typed:ping") == [{"nonce": 41}]
            assert await peer.next("typed:ping:result") == [{"ok": True, "nonce": 41, "received_by": "python"}]

            # A malformed answer is a clear error on the server, naming the path.
            peer.answers["typed:ping"] = lambda data: {"nonce": "forty-two", "received_by": "python"}
            await peer.sio.emit("typed:ask-ping", {"nonce": 42})
            [result] = await peer.next("typed:ping:result")
            assert result["ok"] is False
            assert "invalidAnswer" in result["error"] and "$.nonce" in result["error"], result
            assert peer.sio.connected
        finally:
            await peer.close()

    run(scenario())

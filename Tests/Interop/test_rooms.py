"""Rooms (join, leave, emit to a room, broadcast with exceptions) and emits to every socket of a user."""

from interop import Peer, close_all, connect_all, mint_token, run


def test_rooms_join_leave_broadcast_except(server, transports):
    async def scenario():
        a, b, c = (
            Peer(server.url, mint_token(server.secret, f"room-{name}"), transports, name=name) for name in "abc"
        )
        try:
            await connect_all([a, b, c])
            assert "red" in (await a.request("join", "red"))[0]
            assert "red" in (await b.request("join", "red"))[0]
            assert (await c.request("join", "blue"))[0] == sorted([c.sid(), "user:room-c", "blue"])
            assert (await a.request("rooms"))[0] == sorted([a.sid(), "user:room-a", "red"])

            ack = (await c.request("to-room", {"room": "red", "event": "paint", "data": "red-1"}))[0]
            assert ack["delivered"] == 2, ack
            assert await a.next("paint") == ["red-1"]
            assert await b.next("paint") == ["red-1"]

            # Broadcast to the namespace except the members of "blue": a and b get it, c does not.
            ack = (await a.request("broadcast", {"event": "news", "data": {"v": 1}, "except": ["blue"]}))[0]
            assert await a.next("news") == [{"v": 1}]
            assert await b.next("news") == [{"v": 1}]

            # Broadcast excepting a sid room: everyone but b.
            await a.request("broadcast", {"event": "news", "data": {"v": 2}, "except": [b.sid()]})
            assert await a.next("news") == [{"v": 2}]
            assert await c.next("news") == [{"v": 2}]

            # b leaves red; the next red emit reaches a only.
            assert "red" not in (await b.request("leave", "red"))[0]
            ack = (await c.request("to-room", {"room": "red", "event": "paint", "data": "red-2"}))[0]
            assert ack["delivered"] == 1, ack
            assert await a.next("paint") == ["red-2"]

            # Emitting to a sid room reaches exactly that client.
            ack = (await a.request("to-room", {"room": c.sid(), "event": "direct", "data": "to-c"}))[0]
            assert ack["delivered"] == 1, ack
            assert await c.next("direct") == ["to-c"]

            for peer in (a, b, c):
                await peer.fence()
            assert c.pending("paint") == [] and b.pending("paint") == [] and a.pending("paint") == []
            assert c.pending("news") == [] and b.pending("news") == [] and a.pending("news") == []
            assert a.pending("direct") == [] and b.pending("direct") == []
        finally:
            await close_all([a, b, c])

    run(scenario())


def test_emit_to_user_reaches_every_socket_of_that_user_only(server, transports):
    async def scenario():
        alice_token = mint_token(server.secret, "multi-alice")
        alices = [Peer(server.url, alice_token, transports, name=f"alice{i}") for i in range(3)]
        # one of alice's sockets uses the other transport, so a user's sockets may differ in transport
        other = ["polling"] if transports == ["websocket"] else ["websocket"]
        alices.append(Peer(server.url, alice_token, other, name="alice-other"))
        bob = Peer(server.url, mint_token(server.secret, "multi-bob"), transports, name="bob")
        peers = alices + [bob]
        try:
            await connect_all(peers)
            ack = (await bob.request("to-user", {"user": "multi-alice", "event": "dm", "data": {"text": "hi"}}))[0]
            assert ack["delivered"] == 4, ack
            for alice in alices:
                assert await alice.next("dm") == [{"text": "hi"}]

            ack = (await alices[0].request("to-user", {"user": "multi-bob", "event": "dm", "data": "reply"}))[0]
            assert ack["delivered"] == 1, ack
            assert await bob.next("dm") == ["reply"]

            ack = (await bob.request("to-user", {"user": "nobody", "event": "dm", "data": "lost"}))[0]
            assert ack["delivered"] == 0, ack

            for peer in peers:
                await peer.fence()
            for alice in alices:
                assert alice.pending("dm") == []
            assert bob.pending("dm") == []
        finally:
            await close_all(peers)

    run(scenario())

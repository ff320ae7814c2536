"""Authentication: JWT in the CONNECT auth payload, the user room, refusals, the custom namespace."""

import pytest
import socketio

from interop import Peer, close_all, mint_token, run

UNAUTHORIZED = {"message": "Unauthorized"}


def test_good_token_lands_in_user_room_and_receives_to_user(server, transports):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "alice"), transports, name="alice")
        try:
            await peer.connect()
            assert peer.sio.transport() == transports[0]
            rooms = (await peer.request("rooms"))[0]
            assert rooms == sorted([peer.sid(), "user:alice"])

            ack = (await peer.request("to-user", {"user": "alice", "event": "note", "data": {"n": 1, "s": "é✓"}}))[0]
            assert ack["delivered"] == 1, ack
            assert await peer.next("note") == [{"n": 1, "s": "é✓"}]
        finally:
            await peer.close()

    run(scenario())


@pytest.mark.parametrize(
    "case",
    ["no-token", "bad-signature", "expired", "garbage", "wrong-type"],
)
def test_refused_with_unauthorized(server, transports, case):
    tokens = {
        "no-token": None,
        "bad-signature": mint_token("not-the-secret", "mallory"),
        "expired": mint_token(server.secret, "alice", expires_in=-120),
        "garbage": "not.a.jwt",
        "wrong-type": 12345,
    }

    async def scenario():
        peer = Peer(server.url, tokens[case], transports, name=case)
        try:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await peer.connect()
            assert peer.connect_errors == [("/", UNAUTHORIZED)]
            assert not peer.sio.connected
        finally:
            await peer.close()

    run(scenario())


def test_custom_namespace(server, transports):
    async def scenario():
        token = mint_token(server.secret, "carol")
        custom = Peer(server.url, token, transports, name="custom")
        root = Peer(server.url, token, transports, name="root")
        refused = Peer(server.url, mint_token(server.secret, "carol", expires_in=-60), transports, name="refused")
        try:
            await custom.connect(namespaces=["/custom"])
            await root.connect(namespaces=["/"])
            assert custom.sid("/custom") != root.sid("/")

            rooms = (await custom.request("rooms", namespace="/custom"))[0]
            assert rooms == sorted([custom.sid("/custom"), "user:carol"])
            assert await custom.request("echo-ack", "hi", [1, 2], namespace="/custom") == ["hi", [1, 2]]

            # A user emit in /custom reaches carol's /custom socket only, not her socket in "/".
            ack = (await custom.request("to-user", {"user": "carol", "event": "ns", "data": "custom"},
                                        namespace="/custom"))[0]
            assert ack["delivered"] == 1, ack
            assert await custom.next("ns", namespace="/custom") == ["custom"]
            await root.fence()
            assert root.pending("ns") == [] and root.pending("ns", namespace="/custom") == []

            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(namespaces=["/custom"])
            assert refused.connect_errors == [("/custom", UNAUTHORIZED)]
        finally:
            await close_all([custom, root, refused])

    run(scenario())


def test_unknown_namespace_is_refused(server, transports):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "dave"), transports, name="dave")
        try:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await peer.connect(namespaces=["/nowhere"])
            assert peer.connect_errors == [("/nowhere", {"message": "Invalid namespace"})]
        finally:
            await peer.close()

    run(scenario())

"""Middlewares (server, namespace, dynamic), per-socket data, onAny/onAnyOutgoing and dynamic namespaces.

The interop server (Tests/InteropServer/MiddlewareHandlers.swift) runs the JWT authenticator, then a server
middleware that records `server:<user>` and the client's `tag` in the socket's data, then `/mw`'s own middleware
(`namespace`) or the dynamic namespace's (`dynamic:<name>`); `onConnect` adds `connect`. A client asks a middleware
to refuse through its CONNECT payload: `{"refuse": {"at": …, "message": …, "data": …}}`, `{"explode": …}`.
"""

import pytest
import socketio

from interop import Peer, close_all, mint_token, run


def auth_peer(server, transports, user, name, **extra):
    """A peer whose CONNECT payload is the token plus `extra`."""
    peer = Peer(server.url, mint_token(server.secret, user), transports, name=name)
    token = peer.token

    async def connect(namespaces=("/",), timeout=10.0):
        await peer.sio.connect(
            peer.url,
            auth={"token": token, **extra},
            transports=peer.transports,
            namespaces=list(namespaces),
            wait_timeout=timeout,
        )
        return peer

    peer.connect = connect
    return peer


def test_middlewares_run_in_order_and_their_data_reaches_handlers(server, transports):
    async def scenario():
        peer = auth_peer(server, transports, "ada", "ada", tag="blue")
        try:
            await peer.connect(namespaces=["/mw"])
            me = (await peer.request("whoami", namespace="/mw"))[0]
            assert me["namespace"] == "/mw" and me["user"] == "ada", me
            # The authenticator first (it set the user the server middleware sees), then the server middleware,
            # then the namespace's, then onConnect: all in the one per-socket data value.
            assert me["data"]["trace"] == ["server:ada", "namespace", "connect"], me
            assert me["data"]["tag"] == "blue", me
        finally:
            await peer.close()

    run(scenario())


@pytest.mark.parametrize("step", ["server", "namespace"])
def test_refusal_carries_message_and_data_to_connect_error(server, transports, step):
    async def scenario():
        refusal = {"at": step, "message": f"banned by {step}", "data": {"retryAfter": 5, "reason": ["a", 1]}}
        peer = auth_peer(server, transports, "mallory", "mallory", refuse=refusal)
        try:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await peer.connect(namespaces=["/mw"])
            assert peer.connect_errors == [
                ("/mw", {"message": f"banned by {step}", "data": {"retryAfter": 5, "reason": ["a", 1]}})
            ]
        finally:
            await peer.close()

    run(scenario())


def test_a_middleware_that_throws_refuses_with_a_generic_message(server, transports):
    async def scenario():
        peer = auth_peer(server, transports, "eve", "eve", explode="server")
        try:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await peer.connect(namespaces=["/mw"])
            assert peer.connect_errors == [("/mw", {"message": "Server error"})]
        finally:
            await peer.close()

    run(scenario())


def test_the_authenticator_still_refuses_before_any_middleware(server, transports):
    async def scenario():
        peer = Peer(server.url, mint_token("not-the-secret", "mallory"), transports, name="forged")
        try:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await peer.connect(namespaces=["/mw"])
            assert peer.connect_errors == [("/mw", {"message": "Unauthorized"})]
        finally:
            await peer.close()

    run(scenario())


def test_on_any_sees_every_incoming_event_and_on_any_outgoing_every_sent_one(server, transports):
    async def scenario():
        peer = auth_peer(server, transports, "bob", "bob")
        try:
            await peer.connect(namespaces=["/mw"])
            # An event no handler has: onAny still gets it (with its arguments, binary included).
            await peer.sio.emit("nobody-handles", data=(1, {"x": "é"}), namespace="/mw")
            assert await peer.request("echo", "hi", namespace="/mw") == ["hi"]
            assert await peer.next("echo", namespace="/mw") == ["hi"]
            assert await peer.request("to-me", {"event": "note", "data": [1, 2]}, namespace="/mw") == [1]
            assert await peer.next("note", namespace="/mw") == [[1, 2]]

            data = (await peer.request("whoami", namespace="/mw"))[0]["data"]
            assert data["incoming"] == [
                ["nobody-handles", [1, {"x": "é"}]],
                ["echo", ["hi"]],
                ["to-me", [{"event": "note", "data": [1, 2]}]],
                ["whoami", []],
            ], data
            # The socket's own emit and the gateway's emit to its room; acks are not events.
            assert data["outgoing"] == [["echo", ["hi"]], ["note", [[1, 2]]]], data
        finally:
            await peer.close()

    run(scenario())


def test_dynamic_namespace_accepts_matching_names_with_the_parents_middleware_and_handlers(server, transports):
    async def scenario():
        first = auth_peer(server, transports, "carol", "carol", tag="t")
        second = auth_peer(server, transports, "dan", "dan")
        root = Peer(server.url, mint_token(server.secret, "root"), transports, name="root")
        try:
            await first.connect(namespaces=["/dynamic-42"])
            await second.connect(namespaces=["/dynamic-7"])
            await root.connect()
            me = (await first.request("whoami", namespace="/dynamic-42"))[0]
            assert me["namespace"] == "/dynamic-42" and me["user"] == "carol", me
            assert me["data"]["trace"] == ["server:carol", "dynamic:/dynamic-42"], me
            assert await first.request("echo", "x", namespace="/dynamic-42") == ["x"]

            # Rooms are per child: an emit to the child's namespace does not reach the other child.
            assert await first.request("to-me", {"event": "mine", "data": 1}, namespace="/dynamic-42") == [1]
            assert await first.next("mine", namespace="/dynamic-42") == [1]

            # The gateway emits to every child that has connections.
            children = (await root.request("to-dynamic-children", {"event": "all", "data": "hello"}))[0]
            assert children == ["/dynamic-42", "/dynamic-7"], children
            assert await first.next("all", namespace="/dynamic-42") == ["hello"]
            assert await second.next("all", namespace="/dynamic-7") == ["hello"]
        finally:
            await close_all([first, second, root])

    run(scenario())


def test_dynamic_namespace_refuses_non_matching_names_and_its_middleware_can_refuse(server, transports):
    async def scenario():
        wrong = Peer(server.url, mint_token(server.secret, "dave"), transports, name="wrong")
        refused = auth_peer(
            server, transports, "erin", "erin", refuse={"at": "dynamic", "message": "full", "data": {"cap": 2}}
        )
        try:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await wrong.connect(namespaces=["/dynamic-x1"])
            assert wrong.connect_errors == [("/dynamic-x1", {"message": "Invalid namespace"})]
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(namespaces=["/dynamic-9"])
            assert refused.connect_errors == [("/dynamic-9", {"message": "full", "data": {"cap": 2}})]
        finally:
            await close_all([wrong, refused])

    run(scenario())

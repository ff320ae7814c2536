"""Disconnects from either side, the polling → WebSocket upgrade, and many clients at once."""

import asyncio
import time

from interop import WAIT, Peer, close_all, connect_all, mint_token, run


def test_client_side_disconnect_is_seen_by_server(server, transports):
    async def scenario():
        watcher = Peer(server.url, mint_token(server.secret, "watcher"), ["websocket"], name="watcher")
        leaver = Peer(server.url, mint_token(server.secret, "leaver"), transports, name="leaver")
        try:
            await connect_all([watcher, leaver])
            await watcher.request("join", "watchers")
            sid = leaver.sid()
            await leaver.sio.disconnect()
            assert not leaver.sio.connected
            while True:
                notice = (await watcher.next("peer-left"))[0]
                if notice["sid"] == sid:
                    break
            assert notice["user"] == "leaver"
            assert isinstance(notice["reason"], str) and notice["reason"]
        finally:
            await close_all([watcher, leaver])

    run(scenario())


def test_server_side_disconnect_is_seen_by_client(server, transports):
    async def scenario():
        watcher = Peer(server.url, mint_token(server.secret, "watcher2"), ["websocket"], name="watcher")
        victim = Peer(server.url, mint_token(server.secret, "victim"), transports, name="victim")
        try:
            await connect_all([watcher, victim])
            await watcher.request("join", "watchers")
            sid = victim.sid()
            await victim.sio.emit("disconnect-me")
            namespace, reason = await victim.wait_disconnect()
            assert namespace == "/"
            assert reason == victim.sio.reason.SERVER_DISCONNECT
            deadline = time.monotonic() + WAIT
            while victim.sio.connected and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not victim.sio.connected
            while True:
                notice = (await watcher.next("peer-left"))[0]
                if notice["sid"] == sid:
                    break
            assert notice["user"] == "victim"
            # the watcher is unaffected
            assert await watcher.request("echo-ack", "ok") == ["ok"]
        finally:
            await close_all([watcher, victim])

    run(scenario())


def test_polling_upgrades_to_websocket_and_keeps_delivering(server):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "upgrader"), transports=None, name="upgrader")
        try:
            await peer.connect()
            # python-socketio connects over polling and upgrades in the background when the server offers it.
            deadline = time.monotonic() + WAIT
            while peer.sio.transport() != "websocket" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert peer.sio.transport() == "websocket"
            assert await peer.request("echo-ack", "upgraded", b"\x01\x02") == ["upgraded", b"\x01\x02"]
            ack = (await peer.request("to-user", {"user": "upgrader", "event": "after-upgrade", "data": 7}))[0]
            assert ack["delivered"] == 1, ack
            assert await peer.next("after-upgrade") == [7]
            assert (await peer.request("rooms"))[0] == sorted([peer.sid(), "user:upgrader"])
        finally:
            await peer.close()

    run(scenario())


def test_emits_during_upgrade_are_not_lost(server):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "mid-upgrade"), transports=None, name="mid-upgrade")
        try:
            await peer.connect()
            # Fire events straight away, while the upgrade is probably still in progress.
            for index in range(30):
                await peer.sio.emit("echo", data=(index,))
                await asyncio.sleep(0.01)
            assert [(await peer.next("echo"))[0] for _ in range(30)] == list(range(30))
        finally:
            await peer.close()

    run(scenario())


def test_twenty_five_clients_five_users(server):
    users = [f"load-user-{index}" for index in range(5)]

    async def scenario():
        peers = []
        for index in range(25):
            user = users[index % 5]
            transport = ["websocket"] if index % 2 == 0 else ["polling"]
            peers.append(Peer(server.url, mint_token(server.secret, user), transport, name=f"{user}#{index}"))
        try:
            await connect_all(peers)
            senders = {user: next(p for p in peers if p.name.startswith(user + "#")) for user in users}

            async def send(user):
                for sequence in range(4):
                    ack = (await senders[user].request(
                        "to-user", {"user": user, "event": "mail", "data": {"to": user, "seq": sequence}}
                    ))[0]
                    assert ack["delivered"] == 5, (user, ack)

            await asyncio.gather(*(send(user) for user in users))
            ack = (await peers[0].request("broadcast", {"event": "all", "data": "everyone"}))[0]
            assert ack["delivered"] >= 25, ack

            async def collect(peer):
                user = peer.name.split("#")[0]
                mail = [await peer.next("mail") for _ in range(4)]
                assert mail == [[{"to": user, "seq": sequence}] for sequence in range(4)], (peer.name, mail)
                assert await peer.next("all") == ["everyone"]
                await peer.fence()
                assert peer.pending("mail") == [], peer.name

            await asyncio.gather(*(collect(peer) for peer in peers))
        finally:
            await close_all(peers)

    run(scenario(), limit=90)

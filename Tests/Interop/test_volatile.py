"""Volatile emits: written when the client can take them at once, dropped (not queued) otherwise."""

import asyncio
import json

import aiohttp

from interop import WAIT, Peer, close_all, connect_all, mint_token, run

PATH = "/socket.io/"


def packets(body: str) -> list:
    return [packet for packet in body.split("\x1e") if packet]


def test_volatile_over_websocket_reaches_an_idle_client_and_a_room(server):
    async def scenario():
        peer = Peer(server.url, mint_token(server.secret, "volatile-ws"), ["websocket"], name="volatile")
        try:
            await connect_all([peer])
            # Without an ack request: an ack written just before would still be on its way, and the volatile
            # event after it dropped (as socket.io does while its transport is not writable).
            await peer.sio.emit("volatile", {"event": "position", "data": 1})
            assert await peer.next("position") == [1]
            await peer.request("join", "volatile-room")
            await peer.sio.emit("volatile", {"event": "position", "data": 2, "room": "volatile-room"})
            assert await peer.next("position") == [2]
        finally:
            await close_all([peer])

    run(scenario())


def test_volatile_over_polling_is_dropped_without_a_waiting_get_and_sent_to_one(server):
    async def scenario():
        limit = aiohttp.ClientTimeout(total=WAIT)
        async with aiohttp.ClientSession(timeout=limit) as http:
            base = f"{server.url}{PATH}?EIO=4&transport=polling"
            async with http.get(base) as response:
                opened = await response.text()
            url = base + "&sid=" + json.loads(opened[1:])["sid"]

            async def post(text):
                async with http.post(url, data=text.encode()) as response:
                    assert response.status == 200

            async def get():
                async with http.get(url) as response:
                    assert response.status == 200
                    return packets(await response.text())

            await post("40" + json.dumps({"token": mint_token(server.secret, "volatile-polling")}))
            assert (await get())[0].startswith("40")

            # No GET waits: the volatile event is dropped, the regular one after it is queued.
            await post('420["volatile",{"event":"position","data":1}]')
            await post('42["echo","after"]')
            received = []
            for _ in range(10):
                received += await get()
                if '42["echo","after"]' in received:
                    break
            assert "430[true]" in received and '42["echo","after"]' in received
            assert not any(packet.startswith('42["position"') for packet in received), received

            # A GET waits (and nothing is queued) when the server emits: the volatile event goes out. The server
            # emits after `delayMs`; the GET is parked by then, or the attempt is repeated with a longer delay.
            # A regular `done` follows it, so a GET that came too late returns at once with that alone.
            for attempt, delay in enumerate((300, 600, 1200, 2400), start=2):
                request = {"event": "position", "data": attempt, "delayMs": delay, "then": "done"}
                await post(f"42{attempt}" + json.dumps(["volatile", request], separators=(",", ":")))
                answer = await get()  # the ack, at once
                assert f"43{attempt}[true]" in answer, answer
                parked = []
                for _ in range(5):
                    parked += await get()
                    if '42["done"]' in parked:
                        break
                assert '42["done"]' in parked, parked
                if f'42["position",{attempt}]' in parked:
                    assert parked.index(f'42["position",{attempt}]') < parked.index('42["done"]')
                    break
            else:
                raise AssertionError("a volatile event never reached a waiting GET")
            await post("1")

    run(scenario())

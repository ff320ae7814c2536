"""The application's own route beside Socket.IO, when the server is mounted on Hummingbird.

Run the whole suite against the mounted server with SOCKET_GATEWAY_INTEROP_MOUNTED=hummingbird (the fixture passes
the environment on to the server); this file adds what only a mounted server has.
"""

import os
import urllib.request

import pytest

MOUNTED = os.environ.get("SOCKET_GATEWAY_INTEROP_MOUNTED") == "hummingbird"


@pytest.mark.skipif(not MOUNTED, reason="the server is not mounted (SOCKET_GATEWAY_INTEROP_MOUNTED=hummingbird)")
def test_application_route_answers_beside_socketio(server):
    with urllib.request.urlopen(f"{server.url}/app", timeout=10) as response:
        assert response.status == 200
        assert response.read() == b"the application's own route"

"""Identity-provider-style tokens: `socket-gateway serve` configured by environment with RS256 keys from a JWKS
file, `aud` and `iss` checked; tokens minted by PyJWT (as an identity provider's library does), python-socketio
clients connecting with them. Refusals reach the client as `Unauthorized` and the log with their reason, never the
token.
"""

import json
import os
import subprocess
import time

import jwt
import pytest
import socketio
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cluster_helpers import cli_path, run_cli
from interop import Peer, run
from processes import read_listening_port, stop_gracefully

UNAUTHORIZED = {"message": "Unauthorized"}
AUDIENCE = "socket-gateway"
ISSUER = "https://idp.example"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private_key, kid: str, algorithm: str) -> dict:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(private_key.public_key()))
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


def mint(private_key, kid=None, algorithm="RS256", expires_in=300, drop=(), **overrides) -> str:
    now = int(time.time())
    claims = {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + expires_in, **overrides}
    for name in drop:
        claims.pop(name)
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, private_key, algorithm=algorithm, headers=headers)


@pytest.fixture
def identity_provider(tmp_path):
    """Two signing keys of the provider in a JWKS file (kid idp-rsa, idp-ec) and `serve` configured by env."""
    keys = {"idp-rsa": rsa_key(), "idp-ec": ec.generate_private_key(ec.SECP256R1())}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [
        public_jwk(keys["idp-rsa"], "idp-rsa", "RS256"),
        public_jwk(keys["idp-ec"], "idp-ec", "ES256"),
    ]}))
    log = tmp_path / "serve.log"
    environment = dict(
        os.environ,
        SOCKET_JWT_JWKS=str(jwks),
        SOCKET_JWT_ALGORITHMS="RS256,ES256",
        SOCKET_JWT_AUDIENCE=f"other-app, {AUDIENCE}",
        SOCKET_JWT_ISSUER=ISSUER,
        SOCKET_JWT_LEEWAY="5",
    )
    environment.pop("REDIS_URL", None)
    environment.pop("SOCKET_TOKEN_SECRET", None)
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [str(cli_path()), "serve", "--port", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, env=environment,
        )
    try:
        port = read_listening_port(process)
    except RuntimeError as error:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"serve: {error}\n{log.read_text(errors='replace')}")
    yield f"http://127.0.0.1:{port}", keys, log
    stop_gracefully(process, "serve", lambda: log.read_text(errors="replace")[-3000:])


def test_provider_tokens_are_accepted_over_both_transports(identity_provider):
    url, keys, _ = identity_provider

    async def scenario():
        for transports in (["websocket"], ["polling"]):
            for kid, algorithm in (("idp-rsa", "RS256"), ("idp-ec", "ES256")):
                token = mint(keys[kid], kid, algorithm, aud=[AUDIENCE, "another"])
                peer = Peer(url, token, transports, name=f"{kid}-{transports[0]}")
                try:
                    await peer.connect()
                    assert peer.sio.connected
                    assert peer.connect_errors == []
                finally:
                    await peer.close()

    run(scenario())


def test_bad_provider_tokens_are_refused_and_logged_without_the_token(identity_provider):
    url, keys, log = identity_provider
    key = keys["idp-rsa"]
    rogue = rsa_key()
    tokens = {
        "wrong audience": mint(key, "idp-rsa", aud="other-service"),
        "wrong issuer": mint(key, "idp-rsa", iss="https://evil.example"),
        "expired": mint(key, "idp-rsa", expires_in=-60),
        "no exp": mint(key, "idp-rsa", drop=("exp",)),
        "not yet valid": mint(key, "idp-rsa", nbf=int(time.time()) + 600),
        "user claim not a string": mint(key, "idp-rsa", sub=42),
        "rogue key, known kid": mint(rogue, "idp-rsa"),
        "unknown kid": mint(rogue, "rogue-1"),
        "no kid": mint(key),
        "algorithm not allowed": mint(key, "idp-rsa", algorithm="RS512"),
        "HS256 naming the RSA key": jwt.encode(
            {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 300},
            "x" * 32, algorithm="HS256", headers={"kid": "idp-rsa"},
        ),
        "alg none": jwt.encode(
            {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 300}, None, algorithm="none",
        ),
    }

    async def scenario():
        for case, token in tokens.items():
            peer = Peer(url, token, ["websocket"], name=case)
            try:
                with pytest.raises(socketio.exceptions.ConnectionError):
                    await peer.connect()
                assert peer.connect_errors == [("/", UNAUTHORIZED)], case
            finally:
                await peer.close()

    run(scenario())
    text = log.read_text(errors="replace")
    # The first refusal is logged with its reason; the rest within 10 s are counted, not logged line by line.
    refusals = [line for line in text.splitlines() if "socket.io client refused: invalid token" in line]
    assert len(refusals) == 1, text
    assert "wrongAudience" in refusals[0], refusals[0]
    for token in tokens.values():
        assert token not in text
        signature = token.split(".")[2]
        assert not signature or signature not in text


@pytest.mark.parametrize(
    "environment, message",
    [
        ({"SOCKET_JWT_ALGORITHMS": "RS256,XS999"}, "SOCKET_JWT_ALGORITHMS unknown algorithm 'XS999'"),
        ({"SOCKET_JWT_JWKS": "/nonexistent/jwks.json"}, "SOCKET_JWT_JWKS cannot read '/nonexistent/jwks.json'"),
        ({"SOCKET_JWT_JWKS": "http://idp.example/jwks.json"}, "SOCKET_JWT_JWKS must be https://"),
        ({"SOCKET_JWT_PUBLIC_KEY": "/nonexistent/key.pem"}, "SOCKET_JWT_PUBLIC_KEY cannot read '/nonexistent/key.pem'"),
        ({"SOCKET_JWT_LEEWAY": "soon"}, "SOCKET_JWT_LEEWAY must be a number of seconds"),
        ({"SOCKET_JWT_REQUIRE_EXP": "maybe"}, "SOCKET_JWT_REQUIRE_EXP must be true or false, got 'maybe'"),
        ({"SOCKET_JWT_AUDIENCE": "api"}, "SOCKET_JWT_… settings but no key: set --token-secret"),
    ],
)
def test_serve_refuses_bad_jwt_settings_at_startup(tmp_path, environment, message):
    result = run_cli("serve", "--port", "0", env=environment)
    assert result.returncode == 78, result.stderr
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_serve_refuses_a_jwks_file_without_usable_keys(tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "RSA", "n": "x"}]}))
    result = run_cli("serve", "--port", "0", env={"SOCKET_JWT_JWKS": str(jwks)})
    assert result.returncode == 78, result.stderr
    assert "SOCKET_JWT_JWKS" in result.stderr and "no usable key" in result.stderr, result.stderr

# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in OpenID Connect provider for the end-to-end tests: serves
/.well-known/openid-configuration and a JWKS on a loopback port, mints RS256,
PS256 and ES256 tokens with chosen claims, rotates keys, counts requests and
can delay its answers or be down. Python stdlib + python3-cryptography only.

Run alone to try the broker by hand:
    python3 oidc_provider.py [--port N]   # prints the discovery URL and a token
"""

import base64
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_bytes(n, size=None):
    size = size or max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(size, "big")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Key:
    """A signing key: RS256/PS256 (RSA 2048) or ES256 (P-256)."""

    def __init__(self, kid, alg="RS256"):
        self.kid = kid
        self.alg = alg
        if alg in ("RS256", "PS256"):
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError("unsupported algorithm " + alg)

    def jwk(self, with_alg=True):
        pub = self.private.public_key().public_numbers()
        if self.alg == "ES256":
            out = {"kty": "EC", "crv": "P-256", "x": b64url(_int_bytes(pub.x, 32)),
                   "y": b64url(_int_bytes(pub.y, 32))}
        else:
            out = {"kty": "RSA", "n": b64url(_int_bytes(pub.n)), "e": b64url(_int_bytes(pub.e))}
        out.update({"kid": self.kid, "use": "sig"})
        if with_alg:
            out["alg"] = self.alg
        return out

    def sign(self, data):
        if self.alg == "RS256":
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if self.alg == "PS256":
            return self.private.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                       salt_length=32), hashes.SHA256())
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return _int_bytes(r, 32) + _int_bytes(s, 32)


class Provider:
    """The IdP. `start()` serves on `port` (fixed at construction, so a test
    can point the broker at it while it is still down)."""

    def __init__(self, port=None, tls=None):
        self.port = port or _free_port()
        self.tls = tls  # (certfile, keyfile) to serve https on "localhost"
        host = "localhost" if tls else "127.0.0.1"
        self.issuer = f"{'https' if tls else 'http'}://{host}:{self.port}/realms/test"
        self.discovery_url = self.issuer + "/.well-known/openid-configuration"
        self.jwks_uri = self.issuer + "/protocol/openid-connect/certs"
        self.keys = {}        # kid -> Key (every key that can sign)
        self.published = []   # kids served in the JWKS, in order
        self.lock = threading.Lock()
        self.jwks_requests = 0
        self.discovery_requests = 0
        self.jwks_delay = 0.0  # seconds to wait before answering the JWKS
        self.server = None
        self.thread = None

    # --- keys ---

    def add_key(self, kid, alg="RS256", publish=True):
        key = Key(kid, alg)
        with self.lock:
            self.keys[kid] = key
            if publish:
                self.published.append(kid)
        return key

    def publish(self, kid):
        with self.lock:
            if kid not in self.published:
                self.published.append(kid)

    def rotate(self, new_kid, alg="RS256", drop_old=True):
        """Adds a key and publishes it; drops the previously published ones."""
        key = Key(new_kid, alg)
        with self.lock:
            self.keys[new_kid] = key
            self.published = ([] if drop_old else self.published) + [new_kid]
        return key

    def jwks(self):
        with self.lock:
            return {"keys": [self.keys[k].jwk() for k in self.published]}

    def counts(self):
        with self.lock:
            return self.discovery_requests, self.jwks_requests

    # --- tokens ---

    def token(self, kid, groups=None, aud="backbone", iss=None, lifetime=300, header=None,
              **claims):
        """A signed token. `groups=None` leaves the groups claim out; claims
        given as None are removed (e.g. exp=None)."""
        key = self.keys[kid]
        now = int(time.time())
        body = {"iss": iss or self.issuer, "aud": aud, "sub": "user-" + kid,
                "iat": now, "exp": now + lifetime}
        if groups is not None:
            body["groups"] = groups
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        head = {"alg": key.alg, "typ": "JWT", "kid": kid}
        head.update(header or {})
        head = {k: v for k, v in head.items() if v is not None}
        signing_input = b64url(json.dumps(head)) + "." + b64url(json.dumps(body))
        return signing_input + "." + b64url(key.sign(signing_input.encode()))

    # --- HTTP ---

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                base = provider.issuer.split("/", 3)[3]  # "realms/test"
                if path == "/" + base + "/.well-known/openid-configuration":
                    with provider.lock:
                        provider.discovery_requests += 1
                    body = {"issuer": provider.issuer, "jwks_uri": provider.jwks_uri,
                            "authorization_endpoint": provider.issuer + "/auth",
                            "token_endpoint": provider.issuer + "/token",
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
                elif path == "/" + base + "/protocol/openid-connect/certs":
                    with provider.lock:
                        provider.jwks_requests += 1
                        delay = provider.jwks_delay
                    if delay:
                        time.sleep(delay)
                    body = provider.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def start(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--group", default="mqtt-admins")
    args = parser.parse_args()
    p = Provider(args.port or None)
    p.add_key("rsa-1")
    p.add_key("ec-1", "ES256")
    with p:
        print("discovery_url:", p.discovery_url)
        print("client_id:     backbone")
        print("token (RS256): ", p.token("rsa-1", [args.group], lifetime=3600))
        print("token (ES256): ", p.token("ec-1", [args.group], lifetime=3600))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass

# SPDX-License-Identifier: GPL-3.0-or-later
"""The `oidc` authenticator end to end against a real OpenID Connect provider:
the npm package oidc-provider (tests/integration/oidc-npm, installed by
scripts/test through install_npm_test_deps in scripts/lib.sh), run by node on
loopback with an RS256 and an ES256 key. Its client_credentials grant issues
JWT access tokens (audience `backbone`, a `groups` claim picked by the scope);
the real backboned verifies them through the provider's discovery document
and JWKS, and real MQTT clients log in with them."""
import base64
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from harness import (Broker, Client, connect_packet, main, raw_connect, raw_publish,
                     raw_session, read_packet, wait_for)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/integration
NPM_DIR = os.path.join(HERE, "oidc-npm")
PROVIDER_SCRIPT = os.path.join(NPM_DIR, "provider.mjs")

# Must match provider.mjs.
OAUTH_CLIENT, OAUTH_SECRET = "mqtt-test-client", "mqtt-test-secret"
AUDIENCE = "backbone"
RS256, ES256 = "urn:backbone:rs256", "urn:backbone:es256"
SHORT = "urn:backbone:short"  # RS256, 3 s lifetime
OTHER_AUDIENCE = "urn:other-service"
ADMINS, WRITERS, READERS = "mqtt-admins", "mqtt-writers", "mqtt-readers"

BAD_TOKEN, NOT_AUTHORIZED = 0x86, 0x87


def require_npm_deps():
    """Fails (never skips) with what to run when node or the npm packages are
    missing or older than package-lock.json."""
    fix = ("run `bash -c 'source scripts/lib.sh && install_npm_test_deps'` from the "
           "repository root (scripts/test does), or `npm ci` in " + NPM_DIR)
    if shutil.which("node") is None:
        raise AssertionError("node is not installed (Debian: apt-get install nodejs npm); " + fix)
    if not os.path.isfile(os.path.join(NPM_DIR, "node_modules", "oidc-provider",
                                       "package.json")):
        raise AssertionError("npm package oidc-provider is not installed; " + fix)
    # npm keeps what it installed in node_modules/.package-lock.json.
    def versions(path):
        with open(path) as f:
            return {k: v.get("version") for k, v in json.load(f)["packages"].items() if k}
    try:
        stale = (versions(os.path.join(NPM_DIR, "node_modules", ".package-lock.json"))
                 != versions(os.path.join(NPM_DIR, "package-lock.json")))
    except (OSError, ValueError, KeyError):
        stale = True
    if stale:
        raise AssertionError("node_modules in " + NPM_DIR + " does not match package-lock.json; "
                             + fix)


def jwt_part(token, index):
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class NodeProvider:
    """One `node provider.mjs` process. start() waits (bounded) for its
    "ready <port> <issuer>" line."""

    def __init__(self, keys_path, port=0, issuer=None):
        self.keys_path = keys_path
        self.port = port
        self.issuer = issuer
        self.proc = None
        self.log_path = keys_path + ".log"

    def start(self, timeout=30):
        cmd = ["node", PROVIDER_SCRIPT, "--keys", self.keys_path, "--port", str(self.port)]
        if self.issuer:
            cmd += ["--issuer", self.issuer]
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd, cwd=NPM_DIR, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        lines = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.time() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise AssertionError("oidc-provider did not start:\n" + self.read_log())
            if line.startswith("ready "):
                _, port, issuer = line.split()
                self.port, self.issuer = int(port), issuer
                break
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    @property
    def discovery_url(self):
        return self.base + "/.well-known/openid-configuration"

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def jwks_kids(self):
        with urllib.request.urlopen(self.base + "/jwks", timeout=5) as r:
            return {k["kid"]: k for k in json.load(r)["keys"]}

    def token(self, resource=RS256, scope="mqtt:reader"):
        """An access token from the token endpoint (client_credentials)."""
        form = {"grant_type": "client_credentials", "client_id": OAUTH_CLIENT,
                "client_secret": OAUTH_SECRET, "resource": resource}
        if scope is not None:
            form["scope"] = scope
        req = urllib.request.Request(self.base + "/token",
                                     data=urllib.parse.urlencode(form).encode())
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            raise AssertionError(f"token endpoint: {e.code} {e.read()!r}") from None
        return body["access_token"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None


def oidc_broker(provider, **extra):
    settings = {"discovery_url": provider.discovery_url, "client_id": AUDIENCE,
                "admin_group": ADMINS, "writer_group": WRITERS, "reader_group": READERS,
                "allow_http": True, "http_timeout_ms": 3000, "leeway_s": 0,
                "jwks_min_refresh_s": 0}
    settings.update(extra)
    return Broker(modules=[{"name": "oidc", "settings": settings}])


def code(rc):
    return int(getattr(rc, "value", rc))


def login(broker, token, version=5, timeout=8):
    """Paho login as username=oidc; returns (client, CONNACK code or None)."""
    c = Client(broker, version=version, username="oidc", password=token)
    c.connect(expect_ok=False, timeout=timeout)
    rc = code(c.connack[1]) if c.connack is not None else None
    if rc != 0:
        c.disconnect()
    return c, rc


def raw_login(broker, token, timeout=8):
    """v5 CONNECT on a raw socket; returns the CONNACK reason code."""
    sock = raw_connect(broker)
    try:
        sock.sendall(connect_packet(b"raw-login", version=5, username=b"oidc",
                                    password=token.encode()))
        kind, body = read_packet(sock, timeout)
        return body[1] if kind == 0x20 and len(body) >= 2 else None
    finally:
        sock.close()


def raw_puback(sock, topic, packet_id=7):
    raw_publish(sock, topic, "x", qos=1, packet_id=packet_id)
    kind, body = read_packet(sock)
    assert kind == 0x40, f"expected PUBACK, got {kind!r} {body!r}"
    return body[2] if len(body) > 2 else 0


class ProviderCase(unittest.TestCase):
    """Temp folder for key files; every node process started is stopped."""

    @classmethod
    def setUpClass(cls):
        require_npm_deps()
        cls.dir = tempfile.mkdtemp(prefix="backbone-oidc-npm-")
        cls.providers = []

    @classmethod
    def provider(cls, keys, **kw):
        p = NodeProvider(os.path.join(cls.dir, keys), **kw)
        cls.providers.append(p)
        return p.start()

    @classmethod
    def tearDownClass(cls):
        for p in cls.providers:
            p.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def assertRefused(self, token, expected, reason):
        """A v5 login is refused with `expected`, the broker logging `reason`."""
        before = len(self.broker.read_log())
        self.assertEqual(raw_login(self.broker, token), expected,
                         self.broker.read_log()[-3000:])
        self.assertTrue(wait_for(lambda: reason in self.broker.read_log()[before:], 3),
                        f"no '{reason}' in:\n" + self.broker.read_log()[before:][-3000:])

    def connect(self, token, **kw):
        c, rc = login(self.broker, token, **kw)
        self.assertEqual(rc, 0, self.broker.read_log()[-3000:])
        return c


class RealProvider(ProviderCase):
    """Tokens of one oidc-provider, good and bad, against one broker."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.idp = cls.provider("keys-main.json")
            cls.broker = oidc_broker(cls.idp).start()
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.broker.stop()
        super().tearDownClass()
        if rc != 0:
            raise AssertionError(f"backboned exited with {rc}:\n" + cls.broker.read_log()[-4000:])

    def tearDown(self):
        self.assertTrue(self.broker.alive(), self.broker.read_log()[-4000:])

    def test_rs256_and_es256_tokens_log_in(self):
        kids = self.idp.jwks_kids()
        self.assertEqual(sorted(k["alg"] for k in kids.values()), ["ES256", "RS256"])
        for resource, alg, kty in ((RS256, "RS256", "RSA"), (ES256, "ES256", "EC")):
            token = self.idp.token(resource, "mqtt:reader")
            header, claims = jwt_part(token, 0), jwt_part(token, 1)
            self.assertEqual(header["alg"], alg)
            self.assertEqual(kids[header["kid"]]["kty"], kty)
            self.assertEqual((claims["iss"], claims["aud"]), (self.idp.issuer, AUDIENCE))
            self.assertEqual(claims["groups"], [READERS])
            for version in (5, 4):
                c = self.connect(token, version=version)
                c.disconnect()
        self.assertIn(f"as {OAUTH_CLIENT}-{READERS} via oidc", self.broker.read_log())

    def test_reader_subscribes_but_cannot_publish(self):
        reader = self.connect(self.idp.token(ES256, "mqtt:reader"))
        writer = self.connect(self.idp.token(RS256, "mqtt:writer"))
        self.assertEqual(code(reader.subscribe("plant/#", 1)[0]), 1)
        writer.publish("plant/line1/temp", "21", qos=1)
        self.assertEqual([m.payload for m in reader.wait_messages(1)], [b"21"])
        sock = raw_session(self.broker, 5, "oidc", self.idp.token(RS256, "mqtt:reader"),
                           client_id=b"reader-raw")
        self.assertEqual(raw_puback(sock, "plant/line1/temp"), 0x87)
        sock.close()
        time.sleep(0.3)
        self.assertEqual(len(reader.messages), 1)
        reader.disconnect()
        writer.disconnect()

    def test_writer_publishes(self):
        writer = self.connect(self.idp.token(ES256, "mqtt:writer"))
        self.assertEqual(code(writer.subscribe("w/#", 1)[0]), 1)
        sock = raw_session(self.broker, 5, "oidc", self.idp.token(RS256, "mqtt:writer"),
                           client_id=b"writer-raw")
        self.assertEqual(raw_puback(sock, "w/x"), 0)
        sock.close()
        self.assertEqual([m.topic for m in writer.wait_messages(1)], ["w/x"])
        writer.disconnect()

    def test_admin_every_action(self):
        admin = self.connect(self.idp.token(RS256, "mqtt:admin"))
        self.assertEqual(code(admin.subscribe("#", 1)[0]), 1)
        admin.publish("anything/at/all", "a", qos=1)
        self.assertEqual([m.payload for m in admin.wait_messages(1)], [b"a"])
        sock = raw_session(self.broker, 5, "oidc", self.idp.token(ES256, "mqtt:admin"),
                           client_id=b"admin-raw")
        self.assertEqual(raw_puback(sock, "a/b"), 0)
        sock.close()
        admin.disconnect()

    def test_valid_token_without_role_is_not_authorized(self):
        for scope in ("mqtt:staff", None):
            token = self.idp.token(RS256, scope)
            self.assertNotIn(READERS, jwt_part(token, 1).get("groups", []))
            self.assertRefused(token, NOT_AUTHORIZED, "maps to a role")
        _, rc = login(self.broker, self.idp.token(ES256, "mqtt:staff"), version=4)
        self.assertEqual(rc, 5)

    def test_wrong_audience(self):
        token = self.idp.token(OTHER_AUDIENCE, "mqtt:admin")
        self.assertEqual(jwt_part(token, 1)["aud"], "other-service")
        self.assertRefused(token, BAD_TOKEN, "claim 'aud' does not contain the client_id")

    def test_wrong_issuer(self):
        # Another oidc-provider with the same keys and client but its own issuer.
        other = self.provider("keys-main.json")
        self.assertNotEqual(other.issuer, self.idp.issuer)
        self.assertEqual(other.jwks_kids().keys(), self.idp.jwks_kids().keys())
        token = other.token(RS256, "mqtt:admin")
        self.assertEqual(jwt_part(token, 1)["iss"], other.issuer)
        self.assertRefused(token, BAD_TOKEN, "claim 'iss'")
        self.assertRefused(other.token(ES256, "mqtt:admin"), BAD_TOKEN, "claim 'iss'")
        other.stop()

    def test_expired(self):
        token = self.idp.token(SHORT, "mqtt:reader")
        exp = jwt_part(token, 1)["exp"]
        self.assertEqual(exp - jwt_part(token, 1)["iat"], 3)
        # Valid now; the session is cut when it expires.
        c = self.connect(token)
        self.assertTrue(wait_for(lambda: c.disconnected is not None, 8),
                        "session not cut at exp")
        c.disconnect()
        self.assertTrue(wait_for(lambda: time.time() > exp + 1, 6))
        self.assertRefused(token, BAD_TOKEN, "token expired")

    def test_unknown_key(self):
        # A provider with this issuer's name but keys it never published.
        rogue = self.provider("keys-rogue.json", issuer=self.idp.issuer)
        published = self.idp.jwks_kids()
        for resource in (RS256, ES256):
            token = rogue.token(resource, "mqtt:admin")
            kid = jwt_part(token, 0)["kid"]
            self.assertNotIn(kid, published)
            self.assertEqual(jwt_part(token, 1)["iss"], self.idp.issuer)
            self.assertRefused(token, BAD_TOKEN, f"unknown key id '{kid}' (JWKS refetched)")
        rogue.stop()
        # The provider's own tokens still work after those refetches.
        self.connect(self.idp.token(ES256, "mqtt:reader")).disconnect()


class KeyRotation(ProviderCase):
    """The provider restarts on the same port with a new key set: new tokens
    log in once the module refetches the JWKS for their unknown kid; tokens
    signed with the retired keys are refused."""

    def test_key_rotation(self):
        first = self.provider("keys-1.json")
        self.broker = oidc_broker(first).start()
        try:
            old = {r: first.token(r, "mqtt:writer") for r in (RS256, ES256)}
            for token in old.values():
                self.connect(token).disconnect()
            old_kids = set(first.jwks_kids())
            # Provider down: keys are cached, tokens keep working.
            first.stop()
            self.connect(old[RS256]).disconnect()
            # Same issuer and port, new keys.
            second = self.provider("keys-2.json", port=first.port)
            self.assertEqual(second.issuer, first.issuer)
            new_kids = set(second.jwks_kids())
            self.assertFalse(old_kids & new_kids)
            for resource in (ES256, RS256):
                token = second.token(resource, "mqtt:writer")
                self.assertIn(jwt_part(token, 0)["kid"], new_kids)
                c = self.connect(token)
                sock = raw_session(self.broker, 5, "oidc", token, client_id=b"rotated-raw")
                self.assertEqual(raw_puback(sock, "rotated/x"), 0x10)  # no subscribers
                sock.close()
                c.disconnect()
            fetched = [line for line in self.broker.read_log().splitlines()
                       if "key(s) from" in line and all(k in line for k in new_kids)]
            self.assertTrue(fetched, "the new JWKS was not fetched")
            for token in old.values():
                self.assertRefused(token, BAD_TOKEN,
                                   f"unknown key id '{jwt_part(token, 0)['kid']}'")
            self.assertTrue(self.broker.alive())
        finally:
            rc = self.broker.stop()
        self.assertEqual(rc, 0, self.broker.read_log()[-4000:])


if __name__ == "__main__":
    main()

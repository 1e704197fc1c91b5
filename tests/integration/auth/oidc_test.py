# SPDX-License-Identifier: GPL-3.0-or-later
"""The `oidc` authenticator end to end (SPEC §3, §5): a stand-in OpenID
provider (oidc_provider.py), the real backboned and real MQTT clients."""
import json
import os
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (ALLOW_ALL, BACKBONED, Broker, Client, connect_packet, main, make_jwt,
                     raw_connect, raw_publish, raw_session, read_packet, wait_for)
from oidc_provider import Key, Provider, b64url

CLIENT_ID = "backbone"
ADMINS, WRITERS, READERS = "mqtt-admins", "mqtt-writers", "mqtt-readers"

# v5 CONNACK reason codes and their v3.1.1 return codes.
BAD_TOKEN, NOT_AUTHORIZED, UNAVAILABLE = 0x86, 0x87, 0x88


def settings(provider, **extra):
    s = {"discovery_url": provider.discovery_url, "client_id": CLIENT_ID,
         "admin_group": ADMINS, "writer_group": WRITERS, "reader_group": READERS,
         "allow_http": True, "http_timeout_ms": 3000}
    s.update(extra)
    return s


def oidc_broker(provider, anonymous=None, **extra):
    return Broker(anonymous=anonymous,
                  modules=[{"name": "oidc", "settings": settings(provider, **extra)}])


def code(rc):
    return int(getattr(rc, "value", rc))


def login(broker, token, version=5, timeout=8, client_id=""):
    """Connects with username=oidc; returns (client, CONNACK code or None)."""
    c = Client(broker, version=version, username="oidc", password=token, client_id=client_id)
    c.connect(expect_ok=False, timeout=timeout)
    rc = code(c.connack[1]) if c.connack is not None else None
    if rc != 0:
        c.disconnect()  # stops Paho's network thread (no reconnects)
    return c, rc


def raw_login(broker, token, version=5, timeout=8):
    """CONNECT on a raw socket; returns the CONNACK code (None if none came)."""
    sock = raw_connect(broker)
    try:
        sock.sendall(connect_packet(b"raw-login", version=version, username=b"oidc",
                                    password=token.encode()))
        kind, body = read_packet(sock, timeout)
        return body[1] if kind == 0x20 and len(body) >= 2 else None
    finally:
        sock.close()


def raw_puback(sock, topic, packet_id=7):
    """Publishes QoS 1 on a raw v5 session; returns the PUBACK reason code."""
    raw_publish(sock, topic, "x", qos=1, packet_id=packet_id)
    kind, body = read_packet(sock)
    assert kind == 0x40, f"expected PUBACK, got {kind!r} {body!r}"
    assert int.from_bytes(body[:2], "big") == packet_id
    return body[2] if len(body) > 2 else 0


def forged(provider, kid, groups, **claims):
    """A token naming a published kid but signed with another key."""
    real = provider.keys[kid]
    provider.keys[kid] = Key(kid, real.alg)
    try:
        return provider.token(kid, groups, **claims)
    finally:
        provider.keys[kid] = real


class Roles(unittest.TestCase):
    """Valid tokens, roles and refused tokens against one broker."""

    @classmethod
    def setUpClass(cls):
        cls.idp = Provider()
        cls.idp.add_key("rsa-1", "RS256")
        cls.idp.add_key("ec-1", "ES256")
        cls.idp.add_key("ps-1", "PS256")
        cls.idp.start()
        cls.broker = oidc_broker(cls.idp).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.broker.stop()
        cls.idp.stop()
        if rc != 0:
            raise AssertionError(f"backboned exited with {rc}:\n" + cls.broker.read_log()[-4000:])

    def tearDown(self):
        self.assertTrue(self.broker.alive(), self.broker.read_log()[-4000:])

    def connect(self, token, **kw):
        c, rc = login(self.broker, token, **kw)
        self.assertEqual(rc, 0, self.broker.read_log()[-3000:])
        return c

    def test_reader_subscribes_but_cannot_publish(self):
        reader = self.connect(self.idp.token("ec-1", [READERS], preferred_username="rita"))
        writer = self.connect(self.idp.token("rsa-1", [WRITERS]))
        granted = reader.subscribe("plant/#", 1)
        self.assertEqual(code(granted[0]), 1)
        writer.publish("plant/line1/temp", "21", qos=1)
        self.assertEqual([m.payload for m in reader.wait_messages(1)], [b"21"])
        # The reader's own publish is refused with PUBACK 0x87 and not delivered.
        sock = raw_session(self.broker, 5, "oidc", self.idp.token("ec-1", [READERS]),
                           client_id=b"reader-raw")
        self.assertEqual(raw_puback(sock, "plant/line1/temp"), 0x87)
        sock.close()
        time.sleep(0.3)
        self.assertEqual(len(reader.messages), 1)
        self.assertIn("as rita via oidc", self.broker.read_log())
        reader.disconnect()
        writer.disconnect()

    def test_role_quotas(self):
        with oidc_broker(self.idp, role_quotas={"reader": {"maxSubscriptions": 1},
                                                 "writer": {"maxSubscriptions": 2}}) as b:
            reader, rc = login(b, self.idp.token("ec-1", [READERS]))
            self.assertEqual(rc, 0)
            self.assertEqual([code(c) for c in reader.subscribe([("q/a", 0), ("q/b", 0)])],
                             [0, 0x97])
            # Both roles: the highest one's quotas.
            both, rc = login(b, self.idp.token("ec-1", [READERS, WRITERS]))
            self.assertEqual(rc, 0)
            self.assertEqual([code(c) for c in both.subscribe([("q/a", 0), ("q/b", 0),
                                                               ("q/c", 0)])], [0, 0, 0x97])
            reader.disconnect()
            both.disconnect()

    def test_writer_publishes_and_subscribes(self):
        writer = self.connect(self.idp.token("rsa-1", [WRITERS]))
        self.assertEqual(code(writer.subscribe("w/#", 1)[0]), 1)
        sock = raw_session(self.broker, 5, "oidc", self.idp.token("rsa-1", [WRITERS]),
                           client_id=b"writer-raw")
        self.assertEqual(raw_puback(sock, "w/x"), 0)
        sock.close()
        self.assertEqual([m.topic for m in writer.wait_messages(1)], ["w/x"])
        writer.disconnect()

    def test_admin_every_action(self):
        admin = self.connect(self.idp.token("ps-1", [ADMINS]))
        self.assertEqual(code(admin.subscribe("#", 1)[0]), 1)
        admin.publish("anything/at/all", "a", qos=1)
        self.assertEqual([m.payload for m in admin.wait_messages(1)], [b"a"])
        admin.disconnect()

    def test_union_of_groups_and_single_string_claim(self):
        # Reader + writer + an unrelated group: may publish (writer) and read.
        c = self.connect(self.idp.token("rsa-1", ["staff", READERS, WRITERS]))
        sock = raw_session(self.broker, 5, "oidc",
                           self.idp.token("rsa-1", ["staff", READERS, WRITERS]),
                           client_id=b"union-raw")
        self.assertLess(raw_puback(sock, "u/1"), 0x80)  # 0x10: no subscribers
        sock.close()
        c.disconnect()
        # A single string instead of an array.
        sock = raw_session(self.broker, 5, "oidc", self.idp.token("ec-1", WRITERS),
                           client_id=b"string-raw")
        self.assertLess(raw_puback(sock, "u/2"), 0x80)
        sock.close()

    def test_audience_array(self):
        c = self.connect(self.idp.token("rsa-1", [READERS], aud=["account", CLIENT_ID]))
        c.disconnect()

    def test_within_leeway(self):
        # Expired 10 s ago, leeway 30 s: still accepted.
        c = self.connect(self.idp.token("rsa-1", [READERS], lifetime=-10))
        c.disconnect()

    def test_session_cut_when_token_expires(self):
        c = self.connect(self.idp.token("rsa-1", [READERS], lifetime=2))
        self.assertTrue(wait_for(lambda: c.disconnected is not None, 8))
        c.disconnect()

    def test_valid_token_without_role_is_not_authorized(self):
        for groups in (["staff"], None, []):
            for version, expected in ((5, NOT_AUTHORIZED), (4, 5)):
                _, rc = login(self.broker, self.idp.token("rsa-1", groups), version=version)
                self.assertEqual(rc, expected, f"groups={groups} v{version}")
        self.assertIn("not authorized", self.broker.read_log())

    def test_refused_tokens(self):
        idp = self.idp
        now = int(time.time())
        none_header = b64url(json.dumps({"alg": "none", "kid": "rsa-1"}))
        body = b64url(json.dumps({"iss": idp.issuer, "aud": CLIENT_ID, "exp": now + 300,
                                  "groups": [ADMINS]}))
        cases = {
            "bad signature": forged(idp, "rsa-1", [ADMINS]),
            "bad EC signature": forged(idp, "ec-1", [ADMINS]),
            "expired": idp.token("rsa-1", [ADMINS], lifetime=-120),
            "not yet valid": idp.token("rsa-1", [ADMINS], nbf=now + 600),
            "no exp": idp.token("rsa-1", [ADMINS], exp=None),
            "wrong audience": idp.token("rsa-1", [ADMINS], aud="someone-else"),
            "wrong issuer": idp.token("rsa-1", [ADMINS], iss="http://127.0.0.1:1/evil"),
            "alg none": none_header + "." + body + ".",
            "HS256 with the RSA key's kid": make_jwt("secret", {"iss": idp.issuer,
                                                                "aud": CLIENT_ID,
                                                                "exp": now + 300,
                                                                "groups": [ADMINS]},
                                                     header={"kid": "rsa-1"}),
            "alg of another key type": idp.token("rsa-1", [ADMINS],
                                                 header={"kid": "ec-1"}),
            "garbage": "not-a-token",
            "empty": "",
        }
        for name, tok in cases.items():
            for version, expected in ((5, BAD_TOKEN), (4, 4)):
                rc = raw_login(self.broker, tok, version=version)
                self.assertEqual(rc, expected, f"{name} v{version}")
        log = self.broker.read_log()
        for needle in ("bad signature", "token expired", "not yet valid", "claim 'exp' missing",
                       "claim 'aud'", "claim 'iss'", "algorithm 'none' refused",
                       "algorithm 'HS256' refused"):
            self.assertIn(needle, log)
        for tok in cases.values():
            if tok:
                self.assertNotIn(tok, log)


class KeyRefresh(unittest.TestCase):
    """JWKS caching, refetch on an unknown kid, its rate limit and outages."""

    def setUp(self):
        self.idp = Provider()
        self.idp.add_key("k1", "RS256")

    def tearDown(self):
        self.idp.stop()

    def test_rotation_refetches_once(self):
        self.idp.start()
        with oidc_broker(self.idp, jwks_min_refresh_s=1) as b:
            self.assertEqual(self.idp.counts(), (1, 1))  # fetched eagerly at start
            c, rc = login(b, self.idp.token("k1", [READERS]))
            self.assertEqual(rc, 0)
            c.disconnect()
            self.assertEqual(self.idp.counts(), (1, 1))  # served from the cache
            time.sleep(1.2)
            self.idp.rotate("k2", "ES256")
            for _ in range(3):
                c, rc = login(b, self.idp.token("k2", [WRITERS]))
                self.assertEqual(rc, 0, b.read_log()[-3000:])
                c.disconnect()
            self.assertEqual(self.idp.counts(), (1, 2))  # exactly one refetch
            self.assertIn("unknown key id", b.read_log())
            # The dropped key is gone after the refetch.
            rc = raw_login(b, self.idp.token("k1", [READERS]))
            self.assertEqual(rc, BAD_TOKEN)

    def test_unknown_kids_are_rate_limited(self):
        self.idp.add_key("unpublished", "RS256", publish=False)
        self.idp.start()
        with oidc_broker(self.idp, jwks_min_refresh_s=2) as b:
            # Within 2 s of the start fetch: no refetch at all.
            for _ in range(5):
                rc = raw_login(b, self.idp.token("unpublished", [ADMINS]))
                self.assertEqual(rc, BAD_TOKEN)
            self.assertEqual(self.idp.counts()[1], 1)
            self.assertIn("rate-limited", b.read_log())
            time.sleep(2.2)
            # A burst of logins with unknown kids, all at once: one refetch.
            results = []
            threads = [threading.Thread(target=lambda: results.append(
                raw_login(b, self.idp.token("unpublished", [ADMINS])))) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(15)
            self.assertEqual(results, [BAD_TOKEN] * 8)
            self.assertEqual(self.idp.counts()[1], 2)

    def test_idp_down_at_start_then_up(self):
        # Nothing listens on the provider's port yet: the broker still starts.
        with oidc_broker(self.idp) as b:
            self.assertTrue(wait_for(lambda: "fetching keys failed" in b.read_log(), 5))
            for version, expected in ((5, UNAVAILABLE), (4, 3)):
                _, rc = login(b, self.idp.token("k1", [READERS]), version=version)
                self.assertEqual(rc, expected)
            self.idp.start()
            rcs = []

            def attempt():
                rcs.append(login(b, self.idp.token("k1", [READERS]))[1])
                return rcs[-1] == 0
            self.assertTrue(wait_for(attempt, 10, step=0.3), rcs)
            self.assertEqual(self.idp.counts(), (1, 1))

    def test_idp_down_later_cached_keys_still_work(self):
        self.idp.start()
        with oidc_broker(self.idp, jwks_min_refresh_s=0) as b:
            self.idp.stop()
            c, rc = login(b, self.idp.token("k1", [READERS]))
            self.assertEqual(rc, 0)
            c.disconnect()
            # An unknown kid cannot be checked while the provider is down.
            self.idp.add_key("k9", "RS256")
            rc = raw_login(b, self.idp.token("k9", [READERS]))
            self.assertEqual(rc, UNAVAILABLE)

    def test_idp_timeout_is_unavailable(self):
        self.idp.start()
        with oidc_broker(self.idp, jwks_min_refresh_s=0, http_timeout_ms=500) as b:
            self.idp.jwks_delay = 2.0
            self.idp.rotate("k2", "RS256")
            start = time.time()
            rc = raw_login(b, self.idp.token("k2", [READERS]))
            self.assertEqual(rc, UNAVAILABLE)
            self.assertLess(time.time() - start, 1.8)
            self.assertIn("timed out after 500 ms", b.read_log())

    def test_slow_idp_does_not_block_other_clients(self):
        # The JWKS answers after 3 s; meanwhile other clients work normally.
        self.idp.start()
        with oidc_broker(self.idp, anonymous=ALLOW_ALL, jwks_min_refresh_s=0,
                         http_timeout_ms=8000) as b:
            watcher = Client(b).connect()
            watcher.subscribe("fast/#", 1)
            publisher = Client(b).connect()
            self.idp.jwks_delay = 3.0
            self.idp.rotate("k2", "RS256")
            outcome = {}

            def slow_login():
                start = time.time()
                outcome["rc"] = login(b, self.idp.token("k2", [READERS]), timeout=10)[1]
                outcome["took"] = time.time() - start
            t = threading.Thread(target=slow_login)
            t.start()
            time.sleep(0.2)  # the login now waits for the JWKS
            start = time.time()
            for i in range(10):
                publisher.publish("fast/x", str(i), qos=1)
            self.assertTrue(watcher.wait_messages(10, timeout=5))
            elapsed = time.time() - start
            self.assertEqual(len(watcher.messages), 10)
            self.assertLess(elapsed, 2.0, "other clients were blocked by a slow login")
            self.assertNotIn("rc", outcome)  # the oidc login is still pending
            t.join(15)
            self.assertEqual(outcome.get("rc"), 0)
            self.assertGreaterEqual(outcome["took"], 2.8)
            watcher.disconnect()
            publisher.disconnect()


class Configuration(unittest.TestCase):
    def check_config(self, oidc_settings, env=None):
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"modules": [{"name": "oidc", "settings": oidc_settings},
                                   {"name": "tcp", "settings": {"port": 0}}]}, f)
        e = dict(os.environ)
        e.update(env or {})
        r = subprocess.run([BACKBONED, "--config", path, "--check-config"], capture_output=True,
                           text=True, timeout=20, env=e)
        os.unlink(path)
        return r

    def assert_refused(self, oidc_settings, *needles):
        r = self.check_config(oidc_settings)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertLess(r.returncode, 128, r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        return r

    def test_errors(self):
        url = "http://127.0.0.1:9/.well-known/openid-configuration"
        self.assert_refused({"discovery_url": url, "client_id": "x", "allow_http": True,
                             "groups": "g"}, "setting 'groups': unknown key")
        self.assert_refused({"discovery_url": url, "client_id": "x", "allow_http": True,
                             "leeway_s": "30"}, "setting 'leeway_s': expected an integer")
        self.assert_refused({"discovery_url": url, "client_id": "x", "allow_http": "yes"},
                            "setting 'allow_http': expected true or false")
        self.assert_refused({"discovery_url": url, "allow_http": True},
                            "setting 'client_id': required")
        self.assert_refused({"discovery_url": url, "client_id": "x"}, "plain http")
        self.assert_refused({"discovery_url": "ftp://x/y", "client_id": "x"}, "not an http(s)")
        r = self.assert_refused({"discovery_url": url, "client_id": "x", "allow_http": True,
                                 "client_secret": "hunter2-secret", "http_timeout_ms": 5},
                                "http_timeout_ms")
        self.assertNotIn("hunter2-secret", r.stderr + r.stdout)

    def test_off_without_discovery_url(self):
        r = self.check_config({"client_id": "x"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("oidc provider off", r.stderr + r.stdout)

    def test_env_variables(self):
        idp = Provider()
        idp.add_key("k1", "ES256")
        with idp:
            env = {"OIDC_ENABLED": "true", "OIDC_DISCOVERY_URL": idp.discovery_url,
                   "OIDC_CLIENT_ID": "env-client", "OIDC_CLIENT_SECRET": "env-secret-value",
                   "OIDC_GROUP_FIELD": "roles", "OIDC_WRITER_GROUP": "publishers"}
            mods = ["env", {"name": "oidc", "settings": {"allow_http": True}}]
            with Broker(modules=mods, env=env) as b:
                c, rc = login(b, idp.token("k1", None, aud="env-client", roles=["publishers"]))
                self.assertEqual(rc, 0, b.read_log()[-3000:])
                c.disconnect()
                _, rc = login(b, idp.token("k1", ["publishers"], aud="env-client"))
                self.assertEqual(rc, NOT_AUTHORIZED)  # groups claim is "roles" here
                self.assertNotIn("env-secret-value", b.read_log())


class Https(unittest.TestCase):
    """Discovery and JWKS over TLS, verified against a configured CA file."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="backbone-oidc-tls-")
        cls.cert = os.path.join(cls.dir, "idp.pem")
        cls.key = os.path.join(cls.dir, "idp.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost", "-keyout", cls.key,
                        "-out", cls.cert], check=True, capture_output=True, timeout=30)

    def test_https_with_ca_file(self):
        with Provider(tls=(self.cert, self.key)) as idp:
            idp.add_key("k1", "RS256")
            with oidc_broker(idp, allow_http=False, ca_file=self.cert) as b:
                c, rc = login(b, idp.token("k1", [READERS]))
                self.assertEqual(rc, 0, b.read_log()[-3000:])
                c.disconnect()

    def test_https_untrusted_certificate(self):
        with Provider(tls=(self.cert, self.key)) as idp:
            idp.add_key("k1", "RS256")
            with oidc_broker(idp, allow_http=False) as b:
                rc = raw_login(b, idp.token("k1", [READERS]))
                self.assertEqual(rc, UNAVAILABLE)
                self.assertIn("fetching keys failed", b.read_log())
                self.assertEqual(idp.counts(), (0, 0))


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: GPL-3.0-or-later
"""MQTT over TLS on the tcp module: server certificate, optional client
certificate verification, and bad TLS settings refused at start-up."""
import json
import os
import subprocess
import tempfile
import unittest

from harness import ALLOW_ALL, BACKBONED, Broker, free_port, main, wait_for


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext", cwd=d)


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="backbone-tls-")
        make_pki(cls.pki)

    def path(self, name):
        return os.path.join(self.pki, name)

    def mosquitto(self, tool, b, *args, client_cert=False, timeout=10):
        cmd = [tool, "-h", "127.0.0.1", "-p", str(b.port), "--cafile", self.path("ca.crt")]
        if client_cert:
            cmd += ["--cert", self.path("client.crt"), "--key", self.path("client.key")]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)

    def test_publish_and_subscribe_over_tls(self):
        tls = {"cert": self.path("server.crt"), "key": self.path("server.key")}
        with Broker(anonymous=ALLOW_ALL, tcp_settings={"tls": tls}) as b:
            sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port),
                                    "--cafile", self.path("ca.crt"), "-t", "secure/#", "-C", "1",
                                    "-W", "10", "-v", "-V", "mqttv5"],
                                   stdout=subprocess.PIPE, text=True)
            self.assertTrue(wait_for(lambda: "connected as" in b.read_log(), 5))
            r = self.mosquitto("mosquitto_pub", b, "-t", "secure/x", "-m", "over tls", "-q", "1")
            self.assertEqual(r.returncode, 0, r.stderr)
            out, _ = sub.communicate(timeout=15)
            self.assertEqual(out.strip(), "secure/x over tls")
            # A plain-text client gets nowhere and the broker carries on.
            plain = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t",
                                    "x", "-m", "y"], capture_output=True, text=True, timeout=10)
            self.assertNotEqual(plain.returncode, 0)
            self.assertTrue(b.alive())

    def test_client_certificate_required(self):
        tls = {"cert": self.path("server.crt"), "key": self.path("server.key"),
               "ca": self.path("ca.crt"), "require_client_cert": True}
        with Broker(anonymous=ALLOW_ALL, tcp_settings={"tls": tls}) as b:
            without = self.mosquitto("mosquitto_pub", b, "-t", "x", "-m", "y")
            self.assertNotEqual(without.returncode, 0)
            with_cert = self.mosquitto("mosquitto_pub", b, "-t", "x", "-m", "y", client_cert=True)
            self.assertEqual(with_cert.returncode, 0, with_cert.stderr)

    def test_unreadable_key_stops_startup(self):
        cfg = {"anonymous": {"statements": ALLOW_ALL},
               "modules": [{"name": "tcp", "settings": {"address": "127.0.0.1", "port": free_port(),
                                                        "tls": {"cert": self.path("server.crt"),
                                                                "key": "/nonexistent/key.pem"}}}]}
        path = os.path.join(self.pki, "bad.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([BACKBONED, "--config", path], capture_output=True, text=True,
                           timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/nonexistent/key.pem", r.stderr)


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: GPL-3.0-or-later
"""Packaging, the cheap part (scripts/test-packaging builds and installs the
real .deb): `cmake --install` per component gives the relocatable layout, the
installed example config passes --check-config, the systemd unit and the
Dockerfile agree with the package layout."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BUILD_DIR, SOURCE_DIR, main

UNIT = os.path.join(SOURCE_DIR, "packaging/systemd/backbone.service")
DOCKERFILE = os.path.join(SOURCE_DIR, "packaging/container/Dockerfile")


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def files_under(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def install(component):
    prefix = tempfile.mkdtemp(prefix=f"backbone-install-{component}-")
    run(["cmake", "--install", BUILD_DIR, "--prefix", prefix, "--component", component])
    return prefix


def unit_settings():
    settings = {}
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                key, value = line.split("=", 1)
                settings.setdefault(key, []).append(value)
    return settings


class InstallLayout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.runtime = install("runtime")
        cls.dev = install("dev")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.runtime, ignore_errors=True)
        shutil.rmtree(cls.dev, ignore_errors=True)

    def test_runtime_component(self):
        files = files_under(self.runtime)
        for path in ("bin/backboned", "etc/backbone/backbone.json", "etc/default/backbone",
                     "lib/systemd/system/backbone.service", "lib/backbone/modules/tcp.so",
                     "lib/backbone/modules/env.so", "lib/backbone/modules/admin.so",
                     "lib/backbone/modules/jwt.so"):
            self.assertIn(path, files)
        self.assertTrue(os.access(os.path.join(self.runtime, "bin/backboned"), os.X_OK))
        # Only the daemon, its modules, config and unit: no SDK, no test modules.
        allowed = re.compile(r"^(bin/backboned|lib/backbone/modules/[a-z0-9_-]+\.so|"
                             r"etc/backbone/backbone\.json|etc/default/backbone|"
                             r"lib/systemd/system/backbone\.service)$")
        self.assertEqual(sorted(f for f in files if not allowed.match(f)), [])
        # It holds secrets (ADMIN_TOKEN, TOKEN_SECRET) once edited.
        mode = os.stat(os.path.join(self.runtime, "etc/default/backbone")).st_mode & 0o777
        self.assertEqual(mode, 0o600)

    def test_dev_component(self):
        files = files_under(self.dev)
        for path in ("include/backbone/module_abi.h", "include/backbone/sdk.hpp",
                     "lib/cmake/BackboneSDK/BackboneSDKConfig.cmake",
                     "lib/cmake/BackboneSDK/BackboneSDKConfigVersion.cmake",
                     "lib/cmake/BackboneSDK/BackboneSDKTargets.cmake",
                     "lib/cmake/BackboneSDK/BackboneModule.cmake"):
            self.assertIn(path, files)
        self.assertEqual(sorted(f for f in files
                                if not f.startswith(("include/backbone/", "lib/cmake/BackboneSDK/"))),
                         [])

    def test_nothing_outside_the_components(self):
        prefix = install("Unspecified")
        try:
            self.assertEqual(files_under(prefix), set())
        finally:
            shutil.rmtree(prefix, ignore_errors=True)

    def test_installed_config_checks_with_installed_modules(self):
        """The relocated daemon finds its modules in ../lib/backbone/modules
        and accepts the example config it is installed with."""
        exe = os.path.join(self.runtime, "bin/backboned")
        cfg = os.path.join(self.runtime, "etc/backbone/backbone.json")
        env = {k: v for k, v in os.environ.items()
               if k not in ("ADMIN_TOKEN", "TOKEN_SECRET", "JWT_SECRET", "TCP_PORT")}
        r = run([exe, "--check-config", "--config", cfg], env=env)
        self.assertIn("configuration OK", r.stdout)
        listing = run([exe, "--list-modules", "--config", cfg], env=env).stdout
        self.assertIn(os.path.join(self.runtime, "lib/backbone/modules/tcp.so"), listing)


class SystemdUnit(unittest.TestCase):
    def test_exec_start_matches_package_layout(self):
        s = unit_settings()
        self.assertEqual(s["ExecStart"], ["/usr/bin/backboned --config /etc/backbone/backbone.json"])
        self.assertEqual(s["Type"], ["notify"])
        self.assertEqual(s["User"], ["backbone"])
        self.assertEqual(s["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(s["EnvironmentFile"], ["-/etc/default/backbone"])
        for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges",
                    "CapabilityBoundingSet", "AmbientCapabilities", "StateDirectory",
                    "RestrictAddressFamilies"):
            self.assertIn(key, s)
        self.assertEqual(s["CapabilityBoundingSet"], [""])
        self.assertEqual(s["AmbientCapabilities"], [""])

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze not installed")
    def test_unit_verifies(self):
        # Verified against a copy whose ExecStart is the built daemon (the
        # package path does not exist on a build machine).
        tmp = tempfile.mkdtemp(prefix="backbone-unit-")
        try:
            backboned = os.path.abspath(os.environ.get("BACKBONED", "build/bin/backboned"))
            with open(UNIT) as f:
                text = f.read().replace("/usr/bin/backboned", backboned)
            copy = os.path.join(tmp, "backbone.service")
            with open(copy, "w") as f:
                f.write(text)
            r = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stderr.strip(), "")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Dockerfile(unittest.TestCase):
    def instructions(self):
        with open(DOCKERFILE) as f:
            text = re.sub(r"\\\n", " ", f.read())
        return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]

    def test_copy_sources_exist(self):
        copies = [l.split()[1:] for l in self.instructions() if l.upper().startswith("COPY ")]
        self.assertTrue(copies)
        for args in copies:
            if any(a.startswith("--from") for a in args):
                continue
            sources = [a for a in args if not a.startswith("--")][:-1]
            self.assertTrue(sources, args)
            for src in sources:
                self.assertTrue(os.path.exists(os.path.join(SOURCE_DIR, src)), src)

    def test_runtime_stage(self):
        lines = self.instructions()
        stages = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
        self.assertGreaterEqual(len(stages), 2, "multi-stage")
        runtime = lines[stages[-1]:]
        self.assertTrue(runtime[0].startswith("FROM debian:bookworm-slim"))
        self.assertIn('ENTRYPOINT ["/usr/bin/backboned"]', runtime)
        users = [l.split()[1] for l in runtime if l.upper().startswith("USER ")]
        self.assertTrue(users and not users[-1].startswith(("root", "0")), users)
        self.assertTrue(any(l.startswith("HEALTHCHECK") for l in runtime))
        expose = [l for l in runtime if l.startswith("EXPOSE")]
        self.assertEqual(expose, ["EXPOSE 1883 8883"])


if __name__ == "__main__":
    main()

"""Fixtures of the interop suite: the Hesong NET client library in separate
processes (tests/hesong_peer.py) against our router (in this process, or
as a ``python -m smartbus.server`` process that can be killed) and our
``smartbus.net.Client`` in this process (unit TEST_UNIT; the shared
fixtures are in tests/conftest.py).

"Hesong" is the vendor of the original SmartBus client; ``vendor/`` in this
repository holds OUR C SDK.  The Hesong library is the test-only dependency
hesong-ipsc-busnetcli 3.2.1.post1 (``pip install -e '.[test]'``).  It exists
for Linux x86-64 only: elsewhere, or where it cannot be loaded, the suite is
skipped with the reason.  On Linux x86-64 a missing package is an error, not
a skip, so that CI cannot pass without running the suite.
"""

import os
import platform
import subprocess
import sys

import pytest

from helpers import TESTS_DIR, ScriptProcess, closing_all, wait_for

HESONG_DIST = "hesong-ipsc-busnetcli"
HESONG_VERSION = "3.2.1.post1"
HESONG_LIB = "libbusnetcli.so"

#: the unit of our router in these tests (not 0, so that a zero cannot pass
#: for the access-point unit by accident)
ROUTER_UNIT = 5


def _find_hesong_lib():
    """(path, None) or (None, reason to skip); fails on Linux x86-64 when the
    package is not installed."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, ("Hesong's %s exists for Linux x86-64 only (this is %s %s)"
                      % (HESONG_LIB, sys.platform, platform.machine()))
    from importlib import metadata
    try:
        dist = metadata.distribution(HESONG_DIST)
    except metadata.PackageNotFoundError:
        pytest.fail("the interop suite needs the test-only package %s==%s on Linux x86-64 "
                    "(pip install -e '.[test]')" % (HESONG_DIST, HESONG_VERSION),
                    pytrace=False)
    if dist.version != HESONG_VERSION:
        pytest.fail("the interop suite was written against %s==%s, found %s"
                    % (HESONG_DIST, HESONG_VERSION, dist.version), pytrace=False)
    paths = [f for f in (dist.files or ()) if f.name == HESONG_LIB and "x86_64" in str(f)]
    if not paths:
        pytest.fail("%s %s does not contain %s" % (HESONG_DIST, dist.version, HESONG_LIB),
                    pytrace=False)
    path = str(paths[0].locate())
    # load it in a throw-away process: never in the test process itself
    probe = subprocess.run([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])",
                            path], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return None, "the Hesong library %s cannot be loaded: %s" % (
            path, (probe.stderr.strip().splitlines() or ["exit code %d" % probe.returncode])[-1])
    return path, None


@pytest.fixture(scope="session")
def hesong_lib():
    """Path of Hesong's libbusnetcli.so (skips where it cannot load)."""
    path, reason = _find_hesong_lib()
    if path is None:
        pytest.skip(reason)
    return path


def hesong_env():
    """The environment of a Hesong process: without the sanitizer runtimes
    that .ci/sanitize preloads for our code.  The Hesong process runs none
    of our code, and build C reads past its own copy of every payload that
    has no NUL byte (it copies it as a C string for its trace, NET.md §12
    item 2): AddressSanitizer would abort the Hesong process on the first
    SendData, testing Hesong's memory safety instead of the wire."""
    env = dict(os.environ)
    preload = [p for p in env.get("LD_PRELOAD", "").split()
               if "libasan" not in p and "libubsan" not in p]
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    else:
        env.pop("LD_PRELOAD", None)
    return env


class HesongProcess(ScriptProcess):
    """tests/hesong_peer.py: one Hesong client in its own process."""

    name = "Hesong process"

    def __init__(self, lib):
        super().__init__(os.path.join(TESTS_DIR, "hesong_peer.py"), hesong_env())
        self.lib = lib
        self.events = []                    # every event seen so far
        self.closed = False

    def diagnostics(self):
        try:
            trace = self.call(op="trace", reply_timeout=2)["trace"][-30:]
        except AssertionError:
            trace = []
        return "Hesong trace:\n  %s\nHesong stderr:\n  %s" % (
            "\n  ".join(trace), "  ".join(self.stderr))

    def call(self, reply_timeout=20, **cmd):
        return super().call(reply_timeout, **cmd)

    def start(self, port, unit=20, client_id=5, client_type=11, user=None, password=None,
              info="hesong-client"):
        reply = self.call(op="init", lib=self.lib, unit=unit, client_id=client_id,
                          client_type=client_type, host="127.0.0.1", port=port, user=user,
                          password=password, info=info)
        assert reply["ok"], reply
        return self

    def poll(self):
        """Collects the new events; returns every event seen so far (after
        close(): the events collected up to then)."""
        if not self.closed:
            self.events += self.call(op="events")["events"]
        return self.events

    def of(self, kind):
        """The events of one kind seen so far, without the kind and the time."""
        return [e[1:-1] for e in self.poll() if e[0] == kind]

    def wait(self, kind, predicate=lambda e: True, count=1, timeout=10.0):
        """Waits until ``count`` events of ``kind`` satisfy ``predicate``; returns them."""
        found = wait_for(lambda: (lambda m: len(m) >= count and m)(
            [e for e in self.of(kind) if predicate(e)]), timeout, 0.02)
        assert found, "Hesong client: no %d %s event(s) within %s s; seen: %r\n%s" % (
            count, kind, timeout, [e[:-1] for e in self.events if e[0] != "recv"],
            self.diagnostics())
        return found

    def send(self, cmd, cmd_type, dst, data):
        return self.call(op="send", cmd=cmd, cmd_type=cmd_type, dst=list(dst), data=data.hex())

    def ping(self, dst, data):
        return self.call(op="ping", dst=list(dst), data=data.hex())

    def close(self, timeout=10):
        """quit (the process ends with os._exit, without Release); kill if stuck."""
        if self.proc.poll() is None and not self.closed:
            try:
                self.poll()
            except (AssertionError, OSError, ValueError):
                pass
            self.closed = True
            self.quit(timeout)
        return self.proc.returncode

    def kill(self):
        self.closed = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def hesong(hesong_lib):
    """Factory of Hesong client processes, all ended at teardown."""
    with closing_all(lambda: HesongProcess(hesong_lib), HesongProcess.close) as make:
        yield make


@pytest.fixture
def router_process(server_process):
    """Factory of ready router processes (unit ROUTER_UNIT, TCP on loopback,
    no IPC; ``port=0`` picks a free port), killed at teardown."""
    def make(port=0):
        r = server_process("--port", port, "--unit-id", ROUTER_UNIT, "--no-ipc")
        r.wait_ready()
        return r

    return make

"""Fixtures of the interop suite: the vendor's NET client library in separate
processes (tests/interop/vendor_peer.py), our router (in this process, or as
a ``python -m smartbus.server`` process that can be killed) and our
``smartbus.net.Client`` in this process (unit 40, see tests/conftest.py).

The vendor library is the test-only dependency hesong-ipsc-busnetcli
3.2.1.post1 (``pip install -e '.[test]'``).  It exists for Linux x86-64
only: elsewhere, or where it cannot be loaded, the suite is skipped with
the reason.  On Linux x86-64 a missing package is an error, not a skip, so
that CI cannot pass without running the suite.
"""

import os
import platform
import queue
import re
import subprocess
import sys
import threading

import pytest

from conftest import ScriptProcess, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

VENDOR_DIST = "hesong-ipsc-busnetcli"
VENDOR_VERSION = "3.2.1.post1"
VENDOR_LIB = "libbusnetcli.so"

#: the unit of our router in these tests (not 0, so that a zero cannot pass
#: for the access-point unit by accident)
ROUTER_UNIT = 5


def _find_vendor_lib():
    """(path, None) or (None, reason to skip); fails on Linux x86-64 when the
    package is not installed."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, ("the vendor's %s exists for Linux x86-64 only (this is %s %s)"
                      % (VENDOR_LIB, sys.platform, platform.machine()))
    from importlib import metadata
    try:
        dist = metadata.distribution(VENDOR_DIST)
    except metadata.PackageNotFoundError:
        pytest.fail("the interop suite needs the test-only package %s==%s on Linux x86-64 "
                    "(pip install -e '.[test]')" % (VENDOR_DIST, VENDOR_VERSION),
                    pytrace=False)
    if dist.version != VENDOR_VERSION:
        pytest.fail("the interop suite was written against %s==%s, found %s"
                    % (VENDOR_DIST, VENDOR_VERSION, dist.version), pytrace=False)
    paths = [f for f in (dist.files or ()) if f.name == VENDOR_LIB and "x86_64" in str(f)]
    if not paths:
        pytest.fail("%s %s does not contain %s" % (VENDOR_DIST, dist.version, VENDOR_LIB),
                    pytrace=False)
    path = str(paths[0].locate())
    # load it in a throw-away process: never in the test process itself
    probe = subprocess.run([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])",
                            path], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return None, "the vendor library %s cannot be loaded: %s" % (
            path, (probe.stderr.strip().splitlines() or ["exit code %d" % probe.returncode])[-1])
    return path, None


@pytest.fixture(scope="session")
def vendor_lib():
    """Path of the vendor's libbusnetcli.so (skips where it cannot load)."""
    path, reason = _find_vendor_lib()
    if path is None:
        pytest.skip(reason)
    return path


# ---- the vendor client process ---------------------------------------------------

def vendor_env():
    """The environment of a vendor process: without the sanitizer runtimes
    that .ci/sanitize preloads for our code.  The vendor process runs none
    of our code, and build C reads past its own copy of every payload that
    has no NUL byte (it copies it as a C string for its trace, NET.md §12
    item 2): AddressSanitizer would abort the vendor process on the first
    SendData, testing the vendor's memory safety instead of the wire."""
    env = dict(os.environ)
    preload = [p for p in env.get("LD_PRELOAD", "").split()
               if "libasan" not in p and "libubsan" not in p]
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    else:
        env.pop("LD_PRELOAD", None)
    return env


class VendorProcess(ScriptProcess):
    """tests/interop/vendor_peer.py: one vendor client in its own process."""

    name = "vendor process"

    def __init__(self, lib):
        super().__init__(os.path.join(HERE, "vendor_peer.py"), vendor_env())
        self.lib = lib
        self.events = []                    # every event seen so far
        self.closed = False

    def diagnostics(self):
        try:
            trace = self.call(op="trace", timeout=2)["trace"][-30:]
        except AssertionError:
            trace = []
        return "vendor trace:\n  %s\nvendor stderr:\n  %s" % (
            "\n  ".join(trace), "  ".join(self.stderr))

    def call(self, timeout=20, **cmd):
        return super().call(timeout, **cmd)

    def start(self, port, unit=20, client_id=5, client_type=11, user=None, password=None,
              info="vendor-client"):
        reply = self.call(op="init", lib=self.lib, unit=unit, client_id=client_id,
                          client_type=client_type, host="127.0.0.1", port=port, user=user,
                          password=password, info=info)
        assert reply["ok"], reply
        self.unit, self.client_id, self.client_type, self.info = unit, client_id, client_type, info
        return self

    @property
    def triple(self):
        """(unit, client id, type) as destination arguments."""
        return self.unit, self.client_id, self.client_type

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
        assert found, "vendor client: no %d %s event(s) within %s s; seen: %r\n%s" % (
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
def vendor(vendor_lib):
    """Factory of vendor client processes, all ended at teardown."""
    made = []

    def make():
        v = VendorProcess(vendor_lib)
        made.append(v)
        return v

    yield make
    for v in made:
        v.close()


# ---- routers ----------------------------------------------------------------------

@pytest.fixture
def make_router():
    """Factory of in-process routers (unit ROUTER_UNIT, TCP on loopback, no
    IPC), all stopped at teardown."""
    from smartbus.server import Server
    made = []

    def make(**kwargs):
        kwargs.setdefault("unit_id", ROUTER_UNIT)
        srv = Server(host="127.0.0.1", port=kwargs.pop("port", 0), **kwargs)
        srv.start()
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


class RouterProcess:
    """``python -m smartbus.server`` in its own process (so that it can be killed)."""

    def __init__(self, port=0, unit_id=ROUTER_UNIT):
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smartbus.server", "--host", "127.0.0.1", "--port", str(port),
             "--unit-id", str(unit_id), "--no-ipc"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            line = self.lines.get(timeout=20)
        except queue.Empty:
            line = None
        m = re.search(r"listening on (\S+):(\d+)", line or "")
        if not m:
            self.kill()
            raise AssertionError("smartbus.server did not start: %r" % line)
        self.port = int(m.group(2))

    def _read(self):
        for line in self.proc.stdout:          # keeps the pipe drained
            self.lines.put(line)
        self.lines.put(None)

    def kill(self):
        """SIGKILL: the kernel closes the router's sockets, nothing else runs."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def router_process():
    """Factory of router processes, all killed at teardown."""
    made = []

    def make(**kwargs):
        r = RouterProcess(**kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.kill()


# ---- our client in this process ---------------------------------------------------

@pytest.fixture
def ours(net_lib):
    """Factory of our smartbus.net.Client in this process (unit 40), recording
    events: ``c.events`` ([kind, ...]) and ``c.data`` ([(Head, bytes)]).
    Every client is disposed at teardown."""
    made = []

    class Recorder(net_lib):
        def on_connect(self):
            self.events.append(["connect", self.access_unit_id])
            self.connected_event.set()

        def on_connect_fail(self, code):
            self.events.append(["connect_fail", code])

        def on_disconnect(self):
            self.events.append(["disconnect"])
            self.connected_event.clear()

        def on_data(self, head, data):
            self.data.append((head, bytes(data)))

        def of(self, kind):
            return [e[1:] for e in list(self.events) if e[0] == kind]

        def received(self, cmd=None):
            return [(h, d) for h, d in list(self.data) if cmd is None or h.cmd == cmd]

    def make(client_id, client_type, port, info=None, connect=True):
        c = Recorder.create(client_id, client_type, "127.0.0.1", port, info=info)
        c.events, c.data, c.connected_event = [], [], threading.Event()
        made.append(c)
        c.activate()
        if connect:
            assert c.connected_event.wait(10), "our client %d did not connect: %r" % (
                client_id, c.events)
        return c

    yield make
    for c in made:
        c.dispose()

"""Shared fixtures: a real router on loopback, peer processes, the NET
library initialised once for the test process (unit 40)."""

import collections
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
#: the shared protocol specs and vectors, beside the checkout
SHARED = os.environ.get("SMARTBUS_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
VECTORS = os.path.join(SHARED, "protocol", "vectors")
#: tests that read the golden vectors skip where they are absent (e.g. inside
#: cibuildwheel's container), but never in CI, where they must run
needs_vectors = pytest.mark.skipif(not os.path.isdir(VECTORS) and not os.environ.get("CI"),
                                   reason="golden vectors not found at %s" % VECTORS)
#: the unit id of the pytest process itself (NET units are one per process)
TEST_UNIT = 40


def wait_for(predicate, timeout=5.0, interval=0.01):
    """Polls ``predicate`` until it is true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def short_tmp():
    """A short directory under /tmp (Unix socket paths are limited to 107 bytes)."""
    d = tempfile.mkdtemp(prefix="sbt")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def router(short_tmp):
    """A running router (unit 0) with TCP on loopback and an IPC socket."""
    from smartbus.server import Server
    srv = Server(host="127.0.0.1", port=0, unit_id=0, ipc_path=os.path.join(short_tmp, "ipc"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def net_lib():
    """smartbus.net initialised for this process with unit TEST_UNIT; global
    connect events land in ``net_lib.global_events``."""
    from smartbus.net import Client
    events = []
    Client.initialize(TEST_UNIT, lambda *a: events.append(a))
    Client.global_events = events
    yield Client
    Client.release()


class ScriptProcess:
    """A Python script in its own process, driven by one JSON command per
    line on stdin and answering one JSON line on stdout; ``call`` sends a
    command and waits (bounded) for the answer."""

    name = "process"

    def __init__(self, script, env):
        self.proc = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     text=True)
        self.replies = queue.Queue()
        self.stderr = collections.deque(maxlen=500)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.replies.put(json.loads(line))
        self.replies.put(None)

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def call(self, timeout=30, **cmd):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited (code %s) before %r; stderr:\n%s"
                                 % (self.name, self.proc.returncode, cmd.get("op"),
                                    "".join(self.stderr)))
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("%s did not answer %r within %s s; stderr:\n%s"
                                 % (self.name, cmd, timeout, "".join(self.stderr))) from None
        if reply is None:
            raise AssertionError("%s exited (code %s) on %r; stderr:\n%s"
                                 % (self.name, self.proc.wait(), cmd, "".join(self.stderr)))
        return reply

    def quit(self, timeout=10):
        """Asks the script to quit; kills it if it does not exit in time.
        Returns True when it exited by itself."""
        if self.proc.poll() is not None:
            return True
        try:
            self.call(op="quit", timeout=timeout)
        except (AssertionError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False


class PeerProcess(ScriptProcess):
    """tests/peer.py: a smartbus client in its own process."""

    name = "peer"

    def __init__(self, env=None):
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.update(env or {})
        super().__init__(os.path.join(HERE, "peer.py"), full_env)

    def close(self, timeout=10):
        if not self.quit(timeout):
            raise AssertionError("peer did not exit within %s s" % timeout)
        return self.proc.returncode


def start_net_peer(peers, router, unit, client_id=1, client_type=11, **extra):
    """A registered NET client of unit ``unit`` in a peer process (info "unit-N")."""
    p = peers()
    assert p.call(op="init", kind="net", unit=unit, port=router.port, client_id=client_id,
                  client_type=client_type, info="unit-%d" % unit, **extra)["ok"]
    assert p.call(op="wait_connected", timeout=5)["ok"], "unit %d did not connect" % unit
    return p


def events_of(peer, kind):
    """The events of one kind a peer recorded, without the kind."""
    return [e[1:] for e in peer.call(op="events")["events"] if e[0] == kind]


@pytest.fixture
def peers():
    """Factory of peer processes, all stopped at teardown (a peer that does
    not exit within its timeout fails the test)."""
    made = []

    def make(**env):
        p = PeerProcess(env)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()

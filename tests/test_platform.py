"""The platform choices of the C SDK (vendor/smartbus-sdk/src/platform.h):
the extension reports them (smartbus._native.PLATFORM); a native Linux
build takes the Linux fast paths, a portable one (SMARTBUS_PORTABLE=1) the
POSIX fallbacks that macOS uses.  And a write to a peer that stopped
reading does not kill a process whose SIGPIPE is at its default action (a
C program's; Python ignores SIGPIPE, so the children here restore it):
neither the client's I/O thread nor the router."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from helpers import WireConn, WireServer, data_packet, ipc_packet, package_env, raw_client, \
    register_ack
from smartbus import _native

#: the trigger: on Linux, a Unix stream socket whose peer shut its reading
#: side fails the next send with EPIPE at once (no poll() event comes
#: first, so the SDK does write).  Elsewhere the data is dropped silently.
needs_epipe_trigger = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the EPIPE trigger (a Unix socket peer that shut its reading side) is Linux's")
needs_sigpipe_guard = pytest.mark.skipif(
    _native.PLATFORM["nosigpipe"] == "none",
    reason="this build has no SIGPIPE guard: SMARTBUS_PORTABLE on Linux, where the fallback "
           "(SO_NOSIGPIPE) does not exist")

DEFAULT_SIGPIPE = "import signal, sys; signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"

CLIENT = DEFAULT_SIGPIPE + """
import threading
from smartbus.ipc import Client
connected, lost = threading.Event(), threading.Event()
class C(Client):
    def on_connect(self):
        connected.set()
    def on_disconnect(self):
        lost.set()
c = C.create(20, 3, ipc_path=sys.argv[1])
c.activate()
print("connected" if connected.wait(10) else "not connected", flush=True)
sys.stdin.readline()
c.send_data(3, 3, 0, 21, 3, b"into a socket nobody reads")
print("disconnected" if lost.wait(10) else "still connected", flush=True)
"""

ROUTER = DEFAULT_SIGPIPE + """
from smartbus.server import Server
srv = Server(port=0, ipc_path=sys.argv[1]).start()
print(srv.port, flush=True)
import time
sys.stdin.readline()
deadline = time.monotonic() + 10          # until the router has written and failed
while srv.stats()["closed"] < 1 and time.monotonic() < deadline:
    time.sleep(0.01)
print(srv.stats()["closed"], flush=True)
srv.stop()
"""


def start_child(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=package_env())


def finish_child(child, go):
    """Sends the line ``go``; returns (the child's next line, exit code,
    stderr), bounded in time; a child killed by SIGPIPE fails the test."""
    try:
        child.stdin.write(go + "\n")
        child.stdin.flush()
        line = child.stdout.readline().strip()
        rc = child.wait(20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    err = child.stderr.read()
    assert rc != -signal.SIGPIPE, "killed by SIGPIPE; stderr:\n" + err
    return line, rc, err


def test_build_reports_its_choices():
    p = _native.PLATFORM
    assert set(p) == {"build", "waker", "nosigpipe", "timedwait", "poller"}
    assert _native.PORTABLE_BUILD == (p["build"] == "portable")
    if _native.PORTABLE_BUILD:
        assert (p["waker"], p["timedwait"], p["poller"]) == ("pipe", "realtime", "poll")
        assert p["nosigpipe"] in ("SO_NOSIGPIPE", "none")
    elif sys.platform.startswith("linux"):
        assert p == {"build": "native", "waker": "eventfd", "nosigpipe": "MSG_NOSIGNAL",
                     "timedwait": "monotonic", "poller": "epoll"}
    elif sys.platform == "darwin":
        assert (p["waker"], p["timedwait"], p["poller"]) == ("pipe", "realtime", "poll")
        assert "SO_NOSIGPIPE" in p["nosigpipe"]


@needs_epipe_trigger
@needs_sigpipe_guard
def test_client_survives_a_server_that_stopped_reading(short_tmp):
    path = os.path.join(short_tmp, "srv")
    with WireServer(path) as srv:
        child = start_child(CLIENT, path)
        conn = srv.accept(timeout=20)
        assert len(conn.recv_packet(timeout=10)) == 5961          # the registration
        conn.send(register_ack(0))
        assert child.stdout.readline().strip() == "connected"
        conn.sock.shutdown(socket.SHUT_RD)
        line, rc, err = finish_child(child, "send")
    assert (line, rc) == ("disconnected", 0), err


@needs_epipe_trigger
@needs_sigpipe_guard
def test_router_survives_a_client_that_stopped_reading(short_tmp):
    path = os.path.join(short_tmp, "ipc")
    child = start_child(ROUTER, path)
    port = int(child.stdout.readline())
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    receiver.connect(path)
    receiver = WireConn(receiver)
    sender = None
    try:
        receiver.send(bytes.fromhex(ipc_packet("ipc_registration.json", "typical")["hex"]))
        receiver.recv_packet(cmd=2)                                # its ack: client 20, type 3
        receiver.sock.shutdown(socket.SHUT_RD)
        # the router writes to the receiver: the sender's arrival (a global
        # connect notice), then its data
        sender = raw_client(port, 16, 1)
        sender.send(data_packet((16, 1, 11), (0, 20, 3), b"into a socket nobody reads"))
        closed, rc, err = finish_child(child, "stats")
    finally:
        receiver.close()
        if sender:
            sender.close()
    assert rc == 0, err
    assert int(closed) >= 1, "the router did not drop the connection it could not write to"

"""Plain helpers the tests share (the fixtures that use them are in
conftest.py): where the test data is, bounded waits, a thread-safe event
log and the client mixin that fills it, the driver of the peer scripts and
of ``python -m smartbus.server``, and a bare SmartBus endpoint (a server
that captures what a client sends, a client that the router sees as any
other) for the wire and router tests.

Nothing here imports smartbus at module level: tests/peer.py and
tests/hesong_peer.py import this module too, and the Hesong peer must not
load our extension (it may be built with sanitizers it does not preload).
"""

import collections
import contextlib
import json
import os
import queue
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
#: copies of the golden vectors of the shared protocol specs
#: (shared/protocol/vectors, byte-identical: test_vectors.py checks it)
VECTORS_DIR = os.path.join(TESTS_DIR, "vectors")
#: the unit id of the pytest process itself (NET units are one per process)
TEST_UNIT = 40


def load_vectors(name):
    """The parsed vector file ``name`` (tests/vectors)."""
    with open(os.path.join(VECTORS_DIR, name), encoding="utf-8") as f:
        return json.load(f)


def ipc_packet(name, label_start):
    """The IPC vector packet whose label starts with ``label_start``."""
    for p in load_vectors(name)["packets"]:
        if p["label"].startswith(label_start):
            return p
    raise KeyError("%s: no packet labelled %r" % (name, label_start))


def sdk_source_dir():
    """Our C SDK's sources (vendor/smartbus-sdk) when they are at hand:
    $SMARTBUS_SDK_DIR, else beside these tests in a checkout; None where
    the tests run without the source tree (an installed wheel)."""
    path = os.environ.get("SMARTBUS_SDK_DIR") or \
        os.path.join(os.path.dirname(TESTS_DIR), "vendor", "smartbus-sdk")
    return path if os.path.isfile(os.path.join(path, "include", "smartbus.h")) else None


def package_env(**extra):
    """An environment for a Python subprocess that must import the same
    smartbus as this process: the directory holding the imported package
    goes first on PYTHONPATH (an installed wheel, an editable install or an
    in-place build alike; never the tests' own checkout by guess)."""
    import smartbus
    full = dict(os.environ)
    home = os.path.dirname(os.path.dirname(os.path.abspath(smartbus.__file__)))
    full["PYTHONPATH"] = os.pathsep.join(p for p in (home, full.get("PYTHONPATH")) if p)
    full.update(extra)
    return full


# ---- resources --------------------------------------------------------------------

@contextlib.contextmanager
def closing_all(make, close):
    """A factory wrapping ``make`` that remembers what it made; on exit
    ``close`` is applied to each (all of them, even when one fails)."""
    made = []

    def factory(*args, **kwargs):
        obj = make(*args, **kwargs)
        made.append(obj)
        return obj

    try:
        yield factory
    finally:
        failure = None
        for obj in reversed(made):
            try:
                close(obj)
            except Exception as exc:        # closes the rest, then fails the test
                failure = failure or exc
        if failure is not None:
            raise failure


# ---- waiting -----------------------------------------------------------------------

def wait_for(predicate, timeout=5.0, interval=0.01):
    """Polls ``predicate`` until it is true or ``timeout`` seconds passed;
    returns its last value (falsy on timeout: assert on it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def run_threads(target, count, timeout=120):
    """Runs ``target(i)`` on ``count`` threads at once and waits for them
    (bounded); returns the exceptions they raised (assert it is empty)."""
    errors = []

    def run(i):
        try:
            target(i)
        except BaseException as exc:           # reported to the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads still running after %s s" % timeout
    return errors


class EventLog:
    """Events in arrival order, each with the time.monotonic() it arrived,
    safe across threads.  An event is a kind and its arguments."""

    def __init__(self):
        self._cond = threading.Condition()
        self._all = []                                  # (time, kind, args)
        self._by_kind = collections.defaultdict(list)   # kind -> [args]

    def add(self, kind, *args):
        with self._cond:
            self._all.append((time.monotonic(), kind, args))
            self._by_kind[kind].append(args)
            self._cond.notify_all()

    def of(self, kind, predicate=None):
        """The arguments of every event of ``kind`` (that satisfy ``predicate``)."""
        with self._cond:
            found = list(self._by_kind.get(kind, ()))
        return found if predicate is None else [a for a in found if predicate(a)]

    def timed(self):
        """Every event as (time, kind, args)."""
        with self._cond:
            return list(self._all)

    def wait(self, kind, count=1, predicate=None, timeout=5.0):
        """Waits (bounded) until ``count`` events of ``kind`` (satisfying
        ``predicate``) arrived; returns them all, fewer on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                left = deadline - time.monotonic()
                # without a predicate, counting is O(1): 10,000 messages wake this often
                if predicate is None and len(self._by_kind[kind]) < count and left > 0:
                    self._cond.wait(left)
                    continue
                found = self.of(kind, predicate)
                if len(found) >= count or left <= 0:
                    return found
                self._cond.wait(left)


class Recording:
    """Mixin for a smartbus.net.Client or smartbus.ipc.Client subclass:
    every handler call is added to ``self.log`` with the handler's name
    without ``on_`` as its kind; ``self.connected`` is set while the client
    is registered.  ``recording(base)`` makes the class."""

    def __init__(self, *args, **kwargs):
        self.log = EventLog()
        self.connected = threading.Event()
        super().__init__(*args, **kwargs)

    def on_connect(self):
        self.log.add("connect", self.access_unit_id)
        self.connected.set()

    def on_connect_fail(self, code):
        self.log.add("connect_fail", code)

    def on_disconnect(self):
        self.connected.clear()
        self.log.add("disconnect")

    def on_data(self, head, data):
        self.log.add("data", head, data)

    def on_global_connect_state_changed(self, *args):
        self.log.add("global", *args)

    def on_flow_ack(self, head, project_id, invoke_id, code, msg):
        self.log.add("flow_ack", head, project_id, invoke_id, code, msg)

    def on_flow_resp(self, head, project_id, invoke_id, params):
        self.log.add("flow_resp", head, project_id, invoke_id, params)

    def on_flow_timeout(self, head, project_id, invoke_id):
        self.log.add("flow_timeout", head, project_id, invoke_id)

    def on_flow_error(self, head, project_id, invoke_id, code):
        self.log.add("flow_error", head, project_id, invoke_id, code)

    def received(self, cmd=None):
        """[(head, data)] of the data received (with head cmd ``cmd``)."""
        return [(h, d) for h, d in self.log.of("data") if cmd is None or h.cmd == cmd]


_recording_classes = {}


def recording(base):
    """The Recording subclass of client class ``base``."""
    cls = _recording_classes.get(base)
    if cls is None:
        cls = _recording_classes[base] = type("Recording" + base.__name__, (Recording, base), {})
    return cls


# ---- flows ---------------------------------------------------------------------------

#: the process index (= client id) of the IPSC that flow tests invoke, at the router's unit
FLOW_PROCESS = 1
FLOW_EVENTS = ("flow_ack", "flow_resp", "flow_timeout", "flow_error")


def flow_events(client, invoke_id, kind=None):
    """The flow events of one invoke of a Recording client, in order:
    ("ack" | "resp" | "timeout" | "error", head, project_id, invoke_id,
    ...), of one kind if given."""
    return [(k[5:],) + args for _, k, args in client.log.timed()
            if k in FLOW_EVENTS and args[2] == invoke_id and kind in (None, k[5:])]


def settled(client, invoke_id, timeout=5.0):
    """Waits (bounded) for the end of an invoke: its result, error or timeout."""
    return wait_for(lambda: any(e[0] in ("resp", "error", "timeout")
                                for e in flow_events(client, invoke_id)), timeout)


# ---- processes ---------------------------------------------------------------------

class ScriptProcess:
    """A script in its own Python process, driven by one JSON command per
    line on stdin and answering one JSON line on stdout; ``call`` sends a
    command and waits (bounded) for the answer.  stderr is kept (its last
    lines) for the failure messages."""

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

    def start_call(self, **cmd):
        """Sends a command without waiting; ``reply()`` collects the answer."""
        if self.proc.poll() is not None:
            raise AssertionError("%s exited (code %s) before %r; stderr:\n%s"
                                 % (self.name, self.proc.returncode, cmd.get("op"),
                                    "".join(self.stderr)))
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def reply(self, timeout=60, what="its answer"):
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("%s did not answer %s within %s s; stderr:\n%s"
                                 % (self.name, what, timeout, "".join(self.stderr))) from None
        if reply is None:
            raise AssertionError("%s exited (code %s) on %s; stderr:\n%s"
                                 % (self.name, self.proc.wait(), what, "".join(self.stderr)))
        return reply

    def call(self, reply_timeout=None, **cmd):
        """Sends ``cmd`` and returns the answer; waits ``reply_timeout``
        seconds at most (default: 30 s more than the command's own
        ``timeout``, which the script applies)."""
        self.start_call(**cmd)
        if reply_timeout is None:
            reply_timeout = cmd.get("timeout", 0) + 30
        return self.reply(reply_timeout, repr(cmd))

    def quit(self, timeout=10):
        """Asks the script to quit; kills it if it does not exit in time.
        Returns True when it exited by itself."""
        if self.proc.poll() is not None:
            return True
        try:
            self.call(op="quit", reply_timeout=timeout)
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

    def __init__(self, **env):
        super().__init__(os.path.join(TESTS_DIR, "peer.py"), package_env(**env))

    def close(self, timeout=10):
        if not self.quit(timeout):
            raise AssertionError("peer did not exit within %s s" % timeout)
        return self.proc.returncode

    def events(self, kind):
        """The events of one kind the peer recorded, without the kind."""
        return [e[1:] for e in self.call(op="events")["events"] if e[0] == kind]

    def received(self, count=0, timeout=5.0):
        """[cmd, cmd_type, src unit, src client, data length, data hex] of
        every message received so far, once there are ``count`` (or
        ``timeout`` passed: the peer waits, bounded)."""
        return self.call(op="received", count=count, timeout=timeout)["data"]


def start_net_peer(peers, router, unit, client_id=1, client_type=11, wait=True, **extra):
    """A NET client of unit ``unit`` in a peer process (info "unit-N"),
    registered with ``router`` unless ``wait`` is False."""
    p = peers()
    assert p.call(op="init", kind="net", unit=unit, port=router.port, client_id=client_id,
                  client_type=client_type, info="unit-%d" % unit, **extra)["ok"]
    if wait:
        assert p.call(op="wait_connected", timeout=5)["ok"], "unit %d did not connect" % unit
    return p


def start_ipc_peer(peers, path, client_id=5, client_type=3, wait=True, env=None, **extra):
    """An IPC client on socket ``path`` in a peer process."""
    p = peers(**(env or {}))
    assert p.call(op="init", kind="ipc", ipc_path=path, client_id=client_id,
                  client_type=client_type, **extra)["ok"]
    if wait:
        assert p.call(op="wait_connected", timeout=5)["ok"], "IPC peer did not connect"
    return p


def exchange_both_ways(a, a_to, b, b_to, count, max_size):
    """Peers ``a`` and ``b`` send each other ``count`` payloads of a "send"
    run (0..``max_size`` bytes) at the same time, ``a`` to ``a_to`` and
    ``b`` to ``b_to`` ([unit, client, type]); each then checks the contents
    and order of what it received.  Returns their "expect" answers."""
    a.start_call(op="send", dst=a_to, count=count, max_size=max_size)
    sent_b = b.call(op="send", dst=b_to, count=count, max_size=max_size, reply_timeout=120)
    sent_a = a.reply(timeout=120)
    assert sent_a["ok"] and sent_b["ok"], (sent_a, sent_b)
    got_a = a.call(op="expect", count=count, max_size=max_size, timeout=120)
    got_b = b.call(op="expect", count=count, max_size=max_size, timeout=120)
    assert got_a["ok"], got_a
    assert got_b["ok"], got_b
    return got_a, got_b


class ServerProcess:
    """``python -m smartbus.server ARGS`` in its own process (so that it can
    be signalled and killed); both output streams are drained and kept."""

    READY = re.compile(r"^smartbus router unit (\d+) listening on (\S+):(\d+)")
    COMMAND = ("-m", "smartbus.server")     # what follows the interpreter

    def __init__(self, *args, env=None, nofile=None):
        """``nofile``: the process's open-files limit, one number (soft and
        hard) or (soft, hard); else inherited."""
        def limit():
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               nofile if isinstance(nofile, tuple) else (nofile, nofile))

        self.proc = subprocess.Popen([sys.executable, *self.COMMAND, *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=package_env(**(env or {})),
                                     preexec_fn=limit if nofile else None)
        self.stdout, self.stderr = queue.Queue(), []
        self.port = None
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.stdout.put),
                         daemon=True).start()
        self._stderr_thread = threading.Thread(target=self._drain,
                                               args=(self.proc.stderr, self.stderr.append),
                                               daemon=True)
        self._stderr_thread.start()

    @staticmethod
    def _drain(stream, put):
        for line in stream:
            put(line)
        put(None)

    def line(self, timeout=20):
        """The next line printed on stdout (None at its end)."""
        try:
            return self.stdout.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the server printed nothing within %s s; stderr: %s"
                                 % (timeout, self.stderr_text())) from None

    def wait_ready(self, timeout=20):
        """The ready line ("... listening on HOST:PORT[, ipc PATH]"); sets ``port``."""
        line = self.line(timeout)
        m = self.READY.match(line or "")
        assert m, "the server did not start: %r; stderr: %s" % (line, self.stderr_text())
        self.port = int(m.group(3))
        return line.rstrip("\n")

    def stderr_text(self, timeout=5):
        """What the server wrote on stderr; all of it once it exited."""
        if self.proc.poll() is not None:
            self._stderr_thread.join(timeout)
        return "".join(line for line in list(self.stderr) if line)

    def wait_exit(self, timeout=20):
        """The exit code; the process is killed if it does not exit in time."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the server did not exit within %s s" % timeout) from None

    def terminate(self, timeout=20):
        """SIGTERM; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self):
        """SIGKILL: the kernel closes the router's sockets, nothing else runs."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


# ---- a bare SmartBus endpoint ------------------------------------------------------

HEAD = struct.Struct("<HBBBBBBBBHii")       # the 20-byte packet head (NET.md §3)


def head_of(pkt):
    """The head fields of a packet, read with struct (not with our codec)."""
    flag, cmd, cmdtype, st, su, sc, dt, du, dc, res, size, datalen = HEAD.unpack_from(pkt)
    return {"cmd": cmd, "cmdtype": cmdtype, "src": (st, su, sc), "dst": (dt, du, dc),
            "packet_size": size, "datalen": datalen}


def is_heartbeat(pkt):
    return pkt[3] == 0 and pkt[2] == 5


def register_ack(ap_unit=0, result=0):
    """The short 24-byte registration answer (IPC.md §5.3): access point
    unit in header byte 5, the result at offset 20."""
    from smartbus import _native
    return _native.encode_packet({"kind": "register_ack", "cmd": 2, "cmdtype": 0, "src_type": 1,
                                  "ap_unit": ap_unit, "result": result})


def registration(unit, client_id, client_type=11, user="", password="", info="",
                 layout="net_a"):
    """A registration: NET (the A/B layout our clients send) or, with
    ``layout`` "ipc", IPC (``unit`` is then not used by the router)."""
    from smartbus import _native
    return _native.encode_packet({
        "kind": "register", "layout": layout, "cmd": 1, "cmdtype": 0, "src_type": client_type,
        "src_unit": unit, "src_client": client_id, "client_type": client_type, "unit_id": unit,
        "client_id": client_id, "user": user.encode(), "password": password.encode(),
        "info": info.encode()})


def data_packet(src, dst, payload, cmd=1, cmd_type=3, pad=0, reserved=b"\0\0"):
    """A data packet from ``src`` to ``dst``, both (unit, client, type)."""
    from smartbus import _native
    return _native.encode_packet({
        "kind": "data", "cmd": cmd, "cmdtype": cmd_type, "src_unit": src[0],
        "src_client": src[1], "src_type": src[2], "dst_unit": dst[0], "dst_client": dst[1],
        "dst_type": dst[2], "payload": payload, "pad": pad, "reserved": reserved})


class WireConn:
    """One SmartBus connection on a bare socket.  A reader thread splits the
    byte stream into packets and queues them; a NET server end answers
    heartbeats (``answer_heartbeats``: the client drops a link that stays
    silent for 14 s).  ``pause_reading()`` stops reading (a peer that
    stalls), ``resume_reading()`` goes on."""

    def __init__(self, sock, answer_heartbeats=False):
        self.sock = sock
        self.answer_heartbeats = answer_heartbeats
        self.packets = queue.Queue()
        self._send_lock = threading.Lock()          # the reader answers heartbeats too
        self._reading = threading.Event()
        self._reading.set()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        buf = bytearray()
        try:
            while not self._closed:
                self._reading.wait()
                if not select.select([self.sock], [], [], 0.05)[0] or not self._reading.is_set():
                    continue
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= HEAD.size:
                    size = int.from_bytes(buf[12:16], "little", signed=True)
                    if size < HEAD.size:
                        raise ValueError("packet_size %d < 20: %s" % (size, bytes(buf[:20]).hex()))
                    if len(buf) < size:
                        break
                    pkt = bytes(buf[:size])
                    del buf[:size]
                    if self.answer_heartbeats and is_heartbeat(pkt):
                        self._answer_heartbeat(pkt)
                    self.packets.put(pkt)
        except (OSError, ValueError) as exc:
            self.packets.put(exc)
        self.packets.put(None)

    def _answer_heartbeat(self, pkt):
        ack = bytearray(pkt)
        ack[2] = 6                                      # cmd 6: heartbeat answer
        ack[4:7], ack[7:10] = pkt[7:10], pkt[4:7]       # to the sender
        self.send(bytes(ack))

    def recv_packet(self, timeout=5.0, cmd=None, skip_heartbeats=True):
        """The next packet (with head cmd ``cmd``, others passed over) as
        bytes; TimeoutError when none comes in time, EOFError once the
        other end closed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                pkt = self.packets.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("no packet within %s s" % timeout) from None
            if pkt is None or isinstance(pkt, Exception):
                self.packets.put(pkt)                   # for the next call too
                if pkt is None:
                    raise EOFError("the connection was closed")
                raise pkt
            if skip_heartbeats and is_heartbeat(pkt) and cmd != 5:
                continue
            if cmd is None or pkt[2] == cmd:
                return pkt

    def expect_nothing(self, seconds=0.3):
        """Asserts that no packet, not even a heartbeat, arrives for a while."""
        try:
            pkt = self.recv_packet(seconds, skip_heartbeats=False)
        except TimeoutError:
            return
        raise AssertionError("unexpected packet %s" % pkt.hex())

    def send(self, data):
        with self._send_lock:
            self.sock.sendall(data)

    def pause_reading(self):
        self._reading.clear()

    def resume_reading(self):
        self._reading.set()

    def close(self):
        self._closed = True
        self._reading.set()
        try:
            self.sock.close()
        except OSError:
            pass
        self._thread.join(5)


class WireServer:
    """A bare SmartBus server, for capturing what our clients put on the
    wire: a Unix socket ``path`` or, without one, TCP on 127.0.0.1.  No
    SmartBus code: the test reads and writes the packets itself."""

    def __init__(self, path=None):
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
            self.port = None
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.path = path
        self.sock.listen(8)
        self.conns = []

    def accept(self, timeout=5.0, answer_heartbeats=False):
        """The next client connection (a WireConn)."""
        self.sock.settimeout(timeout)
        try:
            s, _ = self.sock.accept()
        except socket.timeout:
            raise TimeoutError("no client connected within %s s" % timeout) from None
        s.setblocking(True)
        conn = WireConn(s, answer_heartbeats)
        self.conns.append(conn)
        return conn

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_ipc_client(path, client_id, client_type):
    """A bare IPC client of the router on socket ``path``: connects and
    sends its registration; returns the WireConn (read the ack with
    recv_packet)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.settimeout(None)
    conn = WireConn(s)
    conn.send(registration(0, client_id, client_type, layout="ipc"))
    return conn


def raw_client(port, unit, client_id, client_type=11, rcvbuf=None, **credentials):
    """A bare NET client of the router on ``port``: connects and sends its
    registration; returns the WireConn (read the ack with recv_packet).
    ``rcvbuf`` shrinks its receive buffer (a peer that stalls fills fast)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.settimeout(None)
    conn = WireConn(s)
    conn.send(registration(unit, client_id, client_type, **credentials))
    return conn

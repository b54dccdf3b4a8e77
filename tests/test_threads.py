"""Threads: many application threads using clients at once (docs/threading.md).

Eight threads send, ping, launch flows and dispose concurrently, on shared
and separate clients, while handlers on the SDK's callback thread send too:
every message sent arrives exactly once and in each sender's order, no call
raises what it should not, nothing hangs (every wait is bounded).  Clients
disposed by several threads while others call them: every call either
works or raises "closed", and the process survives.  On a free-threaded
build (3.13t, ``.ci/freethreaded``) these run with the GIL off; on a
free-threaded build the GIL also stays off after importing every module.
"""

import os
import pkgutil
import struct
import subprocess
import sys
import sysconfig
import threading
import time

import pytest

from helpers import package_env, recording, wait_for

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
#: messages each sending thread sends (64 bytes each)
SENDS_PER_THREAD = 3000
#: bound of every stress run (a hang fails the test instead of the suite's timeout)
RUN_TIMEOUT = 90.0
PAYLOAD_SIZE = 64
FLOW_PROCESS = 1
RECEIVER_ID = 50
#: an address no client has: the router drops what is sent there
NOBODY = (0, 131, 11)
CMD_DATA, CMD_REPLY = 1, 2
PING_ANSWER_CMD = 8
SEND_QUEUE_FULL = -7


def payload(tid, seq):
    """64 bytes naming the sending thread and its sequence number."""
    return struct.pack("<II", tid, seq).ljust(PAYLOAD_SIZE, b".")


def sender_of(data):
    return struct.unpack_from("<II", data)


def send_retrying(client, cmd, dst, data, deadline):
    """send_data, retried while the send queue is full (bounded)."""
    while True:
        try:
            return client.send_data(cmd, 3, *dst, data)
        except Exception as exc:
            if getattr(exc, "code", None) != SEND_QUEUE_FULL or time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def run_threads(targets, timeout=RUN_TIMEOUT):
    """Runs each callable on its own thread, all started together; returns
    the exceptions raised (as (name, exception)); fails on a thread that
    does not end in time."""
    errors = []
    start = threading.Barrier(len(targets))

    def wrap(name, fn):
        def run():
            try:
                start.wait(timeout)
                fn()
            except BaseException as exc:           # reported by the test
                errors.append((name, exc))
        return run

    threads = [threading.Thread(target=wrap(name, fn), name=name, daemon=True)
               for name, fn in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, "threads still running after %s s: %s" % (timeout, stuck)
    return errors


# ---- the GIL stays off ------------------------------------------------------------------

@pytest.mark.skipif(not FREE_THREADED, reason="a build with the GIL: the GIL is always on "
                                              "(free-threaded builds: .ci/freethreaded)")
def test_gil_stays_disabled_after_importing_every_module():
    import smartbus
    names = sorted(m.name for m in pkgutil.walk_packages(smartbus.__path__, "smartbus.")
                   if not m.name.endswith("__main__"))
    assert "smartbus._native" in names and "smartbus.net" in names
    script = ("import importlib, sys, warnings\n"
              "warnings.simplefilter('error')\n"   # the GIL re-enabled warns: fail loudly
              "for name in sys.argv[1:]:\n"
              "    importlib.import_module(name)\n"
              "print(sys._is_gil_enabled())\n")
    env = package_env()
    env.pop("PYTHON_GIL", None)       # PYTHON_GIL=0 would keep it off whatever we declare
    out = subprocess.run([sys.executable, "-c", script] + names, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", (out.stdout, out.stderr)


# ---- stress: senders, pingers, flows, churn and handlers at once ---------------------------

@pytest.fixture
def echo_flows(router):
    """A FlowServer (process FLOW_PROCESS of the router's unit) whose flow
    proj/echo returns its params."""
    from smartbus.ipsc import FlowServer
    fs = FlowServer(process_index=FLOW_PROCESS, ipc_path=router.ipc_path, max_workers=4)
    fs.add_flow("proj", "echo", lambda *params: list(params))
    fs.start(timeout=10)
    try:
        yield fs
    finally:
        fs.stop()


def counting_class(base):
    """A Recording client class (of smartbus.net.Client or smartbus.ipc.Client)
    that keeps received data, relayed replies and ping answers in lists
    (list.append is atomic: no lock needed) and, when ``relay`` is set to
    (client, dst), sends each data message on from its handler."""
    class Counting(recording(base)):
        relay = None

        def __init__(self, *args, **kwargs):
            self.data = []
            self.replies = []
            self.ping_answers = []
            self.relay_errors = []
            super().__init__(*args, **kwargs)

        def on_data(self, head, data):
            if head.cmd == PING_ANSWER_CMD:
                self.ping_answers.append(data)
            elif head.cmd == CMD_REPLY:
                self.replies.append(data)
            elif head.cmd == CMD_DATA:
                self.data.append(data)
                if self.relay is not None:
                    client, dst = self.relay
                    try:
                        send_retrying(client, CMD_REPLY, dst, data, time.monotonic() + 10)
                    except Exception as exc:     # asserted by the test
                        self.relay_errors.append(exc)
    return Counting


@pytest.fixture
def ipc_receiver(router):
    """A registered IPC client (unit 0, client RECEIVER_ID) counting what it gets."""
    from smartbus.ipc import Client
    receiver = counting_class(Client).create(RECEIVER_ID, 3, ipc_path=router.ipc_path)
    try:
        receiver.activate()
        assert receiver.connected.wait(10), receiver.log.timed()
        yield receiver
    finally:
        receiver.dispose()


def in_order_once(received, tids, count):
    """The problems (empty: none) with ``received``: each of ``tids`` must
    appear ``count`` times, with sequence numbers 0..count-1 in order."""
    seqs = {tid: [] for tid in tids}
    for data in received:
        tid, seq = sender_of(data)
        seqs.setdefault(tid, []).append(seq)
    return ["thread %d: %d received, in order: %s" % (tid, len(s), s == sorted(s))
            for tid, s in seqs.items() if s != list(range(count))]


def test_eight_threads_send_ping_launch_and_dispose_at_once(router, net_lib, net_client,
                                                             ipc_receiver, echo_flows):
    Counting = counting_class(net_lib)
    receiver = ipc_receiver
    shared = net_client(103, router.port, cls=Counting)
    own = [net_client(104 + i, router.port, cls=Counting) for i in range(2)]
    pinger = net_client(106, router.port, cls=Counting)
    launcher = net_client(107, router.port, cls=Counting)
    to_receiver = (0, RECEIVER_ID, 3)
    # the receiver's handler (its sink's callback thread) sends every message
    # back to it, as a reply, through the shared client two threads send on
    receiver.relay = (shared, to_receiver)
    deadline = time.monotonic() + RUN_TIMEOUT
    pings, flows, churned, launched = 300, 40, [], []

    def sender(client, tid):
        def run():
            for seq in range(SENDS_PER_THREAD):
                send_retrying(client, CMD_DATA, to_receiver, payload(tid, seq), deadline)
        return run

    def ping():
        for seq in range(pings):
            pinger.ping(*to_receiver, payload(99, seq))

    def launch():
        for seq in range(flows):
            launched.append((launcher.launch_flow(0, FLOW_PROCESS, "proj", "echo", 0, 10,
                                                  ["t", seq]), seq))

    def churn():
        # clients made, used and disposed while everything else runs
        for round_ in range(10):
            c = net_client(110, router.port, cls=Counting)
            c.send_data(CMD_DATA, 3, *NOBODY, b"nobody")
            c.dispose()
            churned.append(c.is_closed())

    def observe():
        # read-only calls on the busy clients from yet another thread
        while time.monotonic() < deadline and len(receiver.replies) < 4 * SENDS_PER_THREAD:
            for c in (shared, own[0], receiver):
                assert c.is_connected()
                assert c.stats()["sent_msgs"] >= 0
                assert c.access_unit_id == 0
            time.sleep(0.002)

    errors = run_threads([("shared-0", sender(shared, 0)), ("shared-1", sender(shared, 1)),
                          ("own-2", sender(own[0], 2)), ("own-3", sender(own[1], 3)),
                          ("ping", ping), ("launch", launch), ("churn", churn),
                          ("observe", observe)])
    assert errors == []
    total = 4 * SENDS_PER_THREAD
    assert wait_for(lambda: len(receiver.replies) >= total, RUN_TIMEOUT), \
        (len(receiver.data), len(receiver.replies))
    assert in_order_once(receiver.data, range(4), SENDS_PER_THREAD) == []
    assert sorted(receiver.replies) == sorted(receiver.data)
    assert receiver.relay_errors == []
    assert wait_for(lambda: len(pinger.ping_answers) >= pings, 30)
    assert in_order_once(pinger.ping_answers, [99], pings) == []
    assert churned == [True] * 10
    assert len({iid for iid, _ in launched}) == flows
    assert wait_for(lambda: len(launcher.log.of("flow_resp")) >= flows, 30)
    results = {args[2]: args[3] for args in launcher.log.of("flow_resp")}
    assert results == {iid: ["t", seq] for iid, seq in launched}


def test_flows_launched_from_threads_on_one_client_settle_once_each(router, net_lib,
                                                                     net_client, echo_flows):
    caller = net_client(120, router.port, cls=recording(net_lib))
    per_thread = 25
    launched = []

    def launch(tid):
        def run():
            for seq in range(per_thread):
                launched.append((caller.launch_flow(0, FLOW_PROCESS, "proj", "echo", 0, 10,
                                                    [tid, seq]), [tid, seq]))
        return run

    assert run_threads([("launch-%d" % t, launch(t)) for t in range(8)]) == []
    assert wait_for(lambda: len(caller.log.of("flow_resp")) >= 8 * per_thread, 60)
    results = {args[2]: args[3] for args in caller.log.of("flow_resp")}
    assert len(caller.log.of("flow_resp")) == 8 * per_thread
    assert results == dict(launched)


# ---- dispose while other threads call ---------------------------------------------------

CLOSED = "closed"


def hammer(client, call, stop):
    """Calls ``call(client)`` until the client is closed: returns how many
    calls worked; any exception but "the client is closed" (and a full
    send queue) propagates."""
    done = 0
    while not stop.is_set():
        try:
            call(client)
            done += 1
        except RuntimeError as exc:
            assert CLOSED in str(exc), exc
            return done
        except Exception as exc:
            if getattr(exc, "code", None) != SEND_QUEUE_FULL:
                raise
    raise AssertionError("the client was never closed")


CALLS = {
    "send_data": lambda c: c.send_data(1, 3, *NOBODY, b"x" * PAYLOAD_SIZE),
    "send_data_big": lambda c: c.send_data(1, 3, *NOBODY, bytearray(20000)),
    "send_many": lambda c: c.send_many(1, 3, *NOBODY, [b"y"] * 8),
    "ping": lambda c: c.ping(*NOBODY, b"p"),
    "stats": lambda c: c.stats(),
}


@pytest.mark.parametrize("kind", ["net", "ipc"])
def test_dispose_from_several_threads_while_others_call(kind, router, net_client, ipc_client):
    # a client in use by five threads is disposed by three at once: each call
    # works or raises "closed"; the SDK client and an IPC client's own sink
    # are freed once (a double free or a use after free crashes the process,
    # or is reported by .ci/sanitize and .ci/tsan)
    for round_ in range(15):
        if kind == "net":
            client = net_client(130, router.port)
        else:
            client = ipc_client(30, router.ipc_path)
        stop = threading.Event()
        counts = {}
        calls_started = threading.Event()

        def call_until_closed(name):
            def run():
                calls_started.set()
                counts[name] = hammer(client, CALLS[name], stop)
            return run

        def dispose():
            calls_started.wait(10)
            time.sleep(0.005)
            client.dispose()

        targets = [(name, call_until_closed(name)) for name in CALLS]
        targets += [("dispose-%d" % i, dispose) for i in range(3)]
        try:
            errors = run_threads(targets, timeout=30)
        finally:
            stop.set()
        assert errors == []
        assert client.is_closed() and not client.is_connected()
        assert client.access_unit_id is None
        assert set(counts) == set(CALLS)
        with pytest.raises(RuntimeError, match=CLOSED):
            client.send_data(1, 3, *NOBODY, b"late")
    if kind == "net":
        from smartbus.net import Client
        assert Client.find(130) is None


def test_router_stats_and_snapshots_from_threads_while_it_stops():
    from smartbus.server import Server
    for round_ in range(5):
        server = Server(host="127.0.0.1", port=0).start()
        stop = threading.Event()
        reads = []

        def read():
            while not stop.is_set():
                try:
                    assert server.stats()["registered"] == 0
                    server.snapshot(timeout=0.5)
                    reads.append(1)
                except RuntimeError as exc:
                    assert "closed" in str(exc), exc
                    return
                except TimeoutError:          # the loop stopped meanwhile
                    pass

        def close():
            wait_for(lambda: len(reads) >= 3, 10)
            server.stop()
            stop.set()

        errors = run_threads([("read-%d" % i, read) for i in range(3)] + [("stop", close)],
                             timeout=30)
        assert errors == []
        assert len(reads) >= 3


def test_the_suite_runs_with_the_gil_off_on_free_threaded_builds():
    # on a free-threaded build the whole suite must run GIL-free: if a module
    # (ours or a test dependency) re-enabled it, the stress tests above would
    # prove nothing about running without it
    if not FREE_THREADED:
        pytest.skip("a build with the GIL")
    assert sys._is_gil_enabled() is False, \
        "the GIL was re-enabled in this process (PYTHON_GIL=%r)" % os.environ.get("PYTHON_GIL")

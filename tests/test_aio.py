"""smartbus.aio end to end through the real router, under asyncio and
uvloop: connecting (registered, timed out, refused), data both ways with
peer processes, flows on a real FlowServer (result, timeout, error, mode
1), 10,000 messages through the async iterator with far fewer loop
wake-ups than messages, the bounded inbox (back-pressure, nothing lost),
cancellation and closing leaving no thread, task or loop callback behind,
and a loop closed before its client."""

import asyncio
import collections
import logging
import os
import re
import subprocess
import sys
import sysconfig
import threading
import time

import pytest

from helpers import (TESTS_DIR, TEST_UNIT, WireServer, package_env, register_ack, start_net_peer,
                     wait_for)
from peer import payload

PROCESS = 1                       # the FlowServer's process index
PEER_UNIT = 16
LOOP_KINDS = ["asyncio", "uvloop"]


# ---- running coroutines on a loop that counts its cross-thread calls -------------------

def loop_base(kind):
    """The event loop class of ``kind``; uvloop is a test extra, skipped only
    where it cannot be installed (never in CI, but on free-threaded builds:
    no wheel, and importing it would turn the GIL back on)."""
    if kind == "asyncio":
        return asyncio.SelectorEventLoop
    if os.environ.get("CI") and not sysconfig.get_config_var("Py_GIL_DISABLED"):
        import uvloop
    else:
        uvloop = pytest.importorskip("uvloop")
    return uvloop.Loop


def counting_loop(kind):
    """A loop of ``kind`` that records every call_soon_threadsafe: their
    number, and each handle with whether its callback ran."""
    class CountingLoop(loop_base(kind)):
        def __init__(self):
            super().__init__()
            self.threadsafe = []              # [handle, ran]

        def call_soon_threadsafe(self, callback, *args, **kwargs):
            record = [None, False]

            def run(*a):
                record[1] = True
                callback(*a)

            record[0] = super().call_soon_threadsafe(run, *args, **kwargs)
            self.threadsafe.append(record)
            return record[0]

        def pending_threadsafe(self):
            """Cross-thread callbacks neither run nor cancelled."""
            return [h for h, ran in self.threadsafe if not ran and not h.cancelled()]

    return CountingLoop


def run(kind, coro_fn, *args, timeout=90):
    """Runs ``coro_fn(*args)`` as asyncio.run does, on a new counting loop
    of ``kind``, bounded by ``timeout`` seconds; afterwards no task of it
    is left."""
    loop_class = counting_loop(kind)

    async def main():
        result = await asyncio.wait_for(coro_fn(*args), timeout)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert left == [], left
        return result

    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop_class) as runner:
            return runner.run(main())

    class Policy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self):
            return loop_class()

    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(Policy())
    try:
        return asyncio.run(main())
    finally:
        asyncio.set_event_loop_policy(old)


def run_connected(kind, client, body):
    """``run`` of ``body(client)`` with ``client`` connected, closed after
    (as ``async with``)."""
    async def main():
        async with client:
            await client.connect(timeout=10)
            return await body(client)

    return run(kind, main)


async def take(client, count):
    """The payloads of the next ``count`` messages of ``client.messages()``."""
    received = []
    async for head, data in client.messages():
        received.append(data)
        if len(received) == count:
            break
    return received


async def until_full(client):
    """Waits (bounded) until the client's inbox is full: the SDK's callback
    thread then waits for room."""
    deadline = time.monotonic() + 20
    while not client._inbox.full and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert client._inbox.full


def sdk_threads():
    """How many threads of this process Python did not start: the SDK's
    (I/O thread, sink callback threads).  Python's own come and go with
    other parts (the flow server's workers); smartbus.aio's are named."""
    started = {str(t.native_id) for t in threading.enumerate()
               if not isinstance(t, threading._DummyThread)}
    return len(set(os.listdir("/proc/self/task")) - started)


async def nothing_left(client, threads_before):
    """After close(): the SDK threads the client brought are gone and its
    closing thread too, nothing it scheduled waits on the loop, no
    launch_flow is pending."""
    assert client.is_closed()
    loop = asyncio.get_running_loop()
    assert loop.pending_threadsafe() == []
    assert client._flows == {} and client.buffered == (0, 0)
    assert [t for t in threading.enumerate() if t.name.startswith("smartbus-aio")] == []
    deadline = time.monotonic() + 10
    while sdk_threads() > threads_before and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert sdk_threads() <= threads_before


# ---- fixtures --------------------------------------------------------------------------

@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request):
    loop_base(request.param)                  # skips uvloop where it is missing (not in CI)
    return request.param


@pytest.fixture
def flow_server(router):
    """A FlowServer as process 1 of the router's unit."""
    from smartbus.ipsc import FlowServer
    fs = FlowServer(process_index=PROCESS, ipc_path=router.ipc_path, max_workers=8)

    @fs.flow("aio", "echo")
    def echo(*params):
        return list(params)

    @fs.flow("aio", "boom")
    def boom(*params):
        raise ValueError("boom")

    @fs.flow("aio", "sleep")
    def sleep(seconds):
        time.sleep(seconds)
        return ["woke"]

    fs.start(timeout=5)
    try:
        yield fs
    finally:
        fs.stop()


@pytest.fixture(params=["net", "ipc"])
def make_client(request, router, net_lib):
    """``make(**kwargs)``: an aio client of this process on ``router`` (NET:
    unit TEST_UNIT, client 7; IPC: client 5), not connected yet, with
    ``address`` = [unit, client, type] as a peer addresses it.  Closed at
    teardown if a test left it open."""
    from smartbus import aio
    made = []

    def make(**kwargs):
        if request.param == "net":
            c = aio.NetClient(7, 11, "127.0.0.1", router.port, **kwargs)
            c.address = [TEST_UNIT, 7, 11]
        else:
            c = aio.IpcClient(5, 3, ipc_path=router.ipc_path, **kwargs)
            c.address = [0, 5, 3]                 # IPC clients take the router's unit
        made.append(c)
        return c

    yield make
    for c in made:
        if not c.is_closed():
            asyncio.run(c.close())


# ---- connecting and data ------------------------------------------------------------------

def test_connect_and_data_both_ways(make_client, loop_kind, router, peers):
    peer = start_net_peer(peers, router, PEER_UNIT)
    c = make_client()
    threads_before = sdk_threads()

    async def main():
        async with c:
            assert not c.is_connected()
            await c.connect(timeout=10)
            assert c.is_connected()
            await c.connect(timeout=10)               # registered already: returns at once
            for data in (b"first", bytearray(b"second"), None):
                c.send_data(9, 3, PEER_UNIT, 1, 11, data)
            got = peer.received(3)                # (blocks the loop: events wait)
            assert [bytes.fromhex(m[5]) for m in got] == [b"first", b"second", b""]
            assert got[0][:4] == [9, 3, c.address[0], c.address[1]]

            assert peer.call(op="send", dst=c.address, count=200, max_size=300)["ok"]
            received = []
            async for head, data in c.messages():
                received.append((head, data))
                if len(received) == 200:
                    break
            assert [d for _, d in received] == [payload(i, 300) for i in range(200)]
            head = received[0][0]
            assert (head.cmd, head.cmd_type, head.src_unit_id, head.src_unit_client_id,
                    head.dst_unit_client_id) == (5, 3, PEER_UNIT, 1, c.address[1])
        with pytest.raises(RuntimeError, match="closed"):
            c.send_data(9, 3, PEER_UNIT, 1, 11, b"late")
        await nothing_left(c, threads_before)

    run(loop_kind, main)


def test_connect_times_out_or_is_cancelled(net_lib, short_tmp, loop_kind):
    from smartbus import aio
    threads_before = sdk_threads()
    c = aio.IpcClient(6, 3, ipc_path=os.path.join(short_tmp, "nobody"))

    async def main():
        async with c:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError) as err:
                await c.connect(timeout=0.5)
            assert 0.4 <= time.monotonic() - t0 < 5
            assert "IpcClient 6 not registered within 0.5 s" in str(err.value)
            assert "-20" in str(err.value) and err.value.__cause__.code == -20
            with pytest.raises(ValueError, match="timeout"):
                await c.connect(timeout=-1)
            # cancelled while the SDK goes on retrying
            connecting = asyncio.ensure_future(c.connect(timeout=None))
            await asyncio.sleep(0.1)
            connecting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await connecting
            assert c._connect_waiters == set()
        await nothing_left(c, threads_before)

    run(loop_kind, main)


def test_refused_registration_raises_at_once(net_lib):
    from smartbus import aio
    from smartbus.errors import SmartBusError

    async def main():
        with WireServer() as srv:
            async with aio.NetClient(8, 11, "127.0.0.1", srv.port) as c:
                connecting = asyncio.ensure_future(c.connect(timeout=30))
                await asyncio.sleep(0)                    # connect() activates the client
                conn = srv.accept()                       # (blocks the loop: events wait)
                conn.recv_packet()                        # the registration
                t0 = time.monotonic()
                conn.send(register_ack(0, -4))            # refused: not authorised
                with pytest.raises(SmartBusError) as err:
                    await connecting
                assert err.value.code == -4
                assert time.monotonic() - t0 < 5              # not the 30 s timeout

    run("asyncio", main)


# ---- flows --------------------------------------------------------------------------------

def test_flow_result(make_client, loop_kind, flow_server):
    c = make_client()

    async def main(c):
        values = [1, "二", [3.5, None], {"k": True}]
        assert await c.launch_flow(0, PROCESS, "aio", "echo", 0, 10, values) == values
        # many at once, each answered with its own result
        results = await asyncio.gather(*(c.launch_flow(0, PROCESS, "aio", "echo", 0, 20, [i])
                                         for i in range(200)))
        assert results == [[i] for i in range(200)]
        # mode 1: no result, [] once the flow started
        assert await c.launch_flow(0, PROCESS, "aio", "echo", 1, 10, [1]) == []
        assert c._flows == {}

    run_connected(loop_kind, c, main)


def test_flow_timeout(make_client, loop_kind, flow_server):
    from smartbus.errors import FlowError, FlowTimeout, SmartBusError
    c = make_client()

    async def main(c):
        t0 = time.monotonic()
        with pytest.raises(FlowTimeout) as err:
            await c.launch_flow(0, PROCESS, "aio", "sleep", 0, 0.5, [3])
        assert 0.4 <= time.monotonic() - t0 < 3      # at the timeout, not the handler's 3 s
        exc = err.value
        assert isinstance(exc, FlowError) and isinstance(exc, SmartBusError)
        assert (exc.code, exc.project_id, exc.detail) == (-25, "aio", None)
        assert exc.invoke_id > 0 and "invoke %d" % exc.invoke_id in str(exc)
        # nobody at process 9: not even acknowledged
        with pytest.raises(FlowTimeout) as err:
            await c.launch_flow(0, 9, "aio", "echo", 0, 1, [])
        assert err.value.detail == "not acknowledged"
        assert c._flows == {}

    run_connected(loop_kind, c, main)


def test_flow_error(make_client, loop_kind, flow_server):
    import pickle

    from smartbus.errors import FlowError, FlowTimeout
    c = make_client()

    async def main(c):
        with pytest.raises(FlowError) as err:
            await c.launch_flow(0, PROCESS, "aio", "nope", 0, 10, [])
        exc = err.value
        assert not isinstance(exc, FlowTimeout)
        assert (exc.code, exc.project_id, exc.detail) == (-23, "aio", "unknown flow 'aio/nope'")
        assert "SMARTBUS_ERR_DEST_NONEXIST" in str(exc) and "aio/nope" in str(exc)
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is FlowError and str(back) == str(exc)
        # the handler raised: the flow server reports -99 after its ack 1
        with pytest.raises(FlowError) as err:
            await c.launch_flow(0, PROCESS, "aio", "boom", 0, 10, [])
        assert err.value.code == -99
        # mode 1 reports a failed start too
        with pytest.raises(FlowError) as err:
            await c.launch_flow(0, PROCESS, "aio", "nope", 1, 10, [])
        assert err.value.code == -23
        # bad arguments: the sync client's errors, before anything is sent
        with pytest.raises(ValueError):
            await c.launch_flow(0, PROCESS, "aio", "echo", 3, 10, [])
        with pytest.raises(TypeError):
            await c.launch_flow(0, PROCESS, "aio", "echo", 0, 10, "not a list")
        assert c._flows == {}

    run_connected(loop_kind, c, main)


# ---- many messages -------------------------------------------------------------------------

N_MESSAGES = 10000


def test_10000_messages_with_few_wakeups(make_client, loop_kind, router, peers):
    peer = start_net_peer(peers, router, PEER_UNIT)
    c = make_client()

    async def main(c):
        loop = asyncio.get_running_loop()
        wakeups_before = len(loop.threadsafe)
        peer.start_call(op="send", dst=c.address, count=N_MESSAGES, max_size=512)
        received = await take(c, N_MESSAGES)
        wakeups = len(loop.threadsafe) - wakeups_before
        assert peer.reply()["ok"]
        assert received == [payload(i, 512) for i in range(N_MESSAGES)]
        print("%s %s: %d messages, %d loop wake-ups"
              % (loop_kind, type(c).__name__, N_MESSAGES, wakeups))
        # a wake-up per burst, not per message (the peer's run comes in
        # bursts of hundreds; a loaded machine makes them smaller)
        assert 1 <= wakeups <= N_MESSAGES // 10, wakeups

    run_connected(loop_kind, c, main)


def test_iterators_share_one_stream(make_client, router, peers):
    """Two consumers: each message goes to one of them, each sees its share in order."""
    peer = start_net_peer(peers, router, PEER_UNIT)
    c = make_client()
    count = 3000

    async def main(c):
        shares = ([], [])
        done = asyncio.Event()

        async def consume(share):
            async for head, data in c.messages():
                share.append(data)
                if sum(map(len, shares)) == count:
                    done.set()
                await asyncio.sleep(0)            # let the other one take some

        consumers = [asyncio.ensure_future(consume(share)) for share in shares]
        assert peer.call(op="send", dst=c.address, count=count, max_size=50)["ok"]
        await asyncio.wait_for(done.wait(), 30)
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        everything = [payload(i, 50) for i in range(count)]
        assert sorted(shares[0] + shares[1]) == sorted(everything)
        assert shares[0] and shares[1]
        sent_at = collections.defaultdict(list)           # payload -> its indexes
        for i, data in enumerate(everything):
            sent_at[data].append(i)
        for share in shares:                              # each share in arrival order
            positions = [sent_at[d][0] for d in share if len(sent_at[d]) == 1]
            assert len(positions) > len(share) // 2 and positions == sorted(positions)

    run_connected("asyncio", c, main)


def test_inbox_is_bounded_and_loses_nothing(make_client, router, peers):
    peer = start_net_peer(peers, router, PEER_UNIT)
    c = make_client(max_buffered=500, max_buffered_bytes=1 << 20)
    count = 5000

    async def main(c):
        peer.start_call(op="send", dst=c.address, count=count, max_size=100)
        # nothing consumes: the inbox fills to its bound and the callback
        # thread waits there (the rest waits in the SDK, the router, TCP)
        await until_full(c)
        assert c.buffered[0] == 500
        await asyncio.sleep(0.3)
        assert c.buffered[0] == 500
        received = await take(c, count)
        assert received == [payload(i, 100) for i in range(count)]
        assert peer.reply()["ok"]

    run_connected("asyncio", c, main)


def test_bursts_larger_than_the_inbox(make_client, router, peers):
    """The connection takes a burst at a time (on_data_batch) into an
    inbox of 3 messages: each burst waits for room several times over, and
    every message arrives, in order."""
    peer = start_net_peer(peers, router, PEER_UNIT)
    c = make_client(max_buffered=3)

    async def main(c):
        assert callable(type(c._sync).on_data_batch)
        peer.start_call(op="send", dst=c.address, count=2000, max_size=50)
        received = await take(c, 2000)
        assert received == [payload(i, 50) for i in range(2000)]
        assert peer.reply()["ok"]

    run_connected("asyncio", c, main)


def test_inbox_bound_in_bytes(make_client, router, peers):
    """A message larger than the byte bound still passes, alone."""
    peer = start_net_peer(peers, router, PEER_UNIT)
    c = make_client(max_buffered_bytes=1000)

    async def main(c):
        assert peer.call(op="send", dst=c.address, count=200, max_size=3000)["ok"]
        await until_full(c)
        n, size = c.buffered
        assert size <= 1000 or n == 1
        received = await take(c, 200)
        assert received == [payload(i, 3000) for i in range(200)]

    run_connected("asyncio", c, main)


def test_flow_answer_held_up_by_a_full_inbox(make_client, router, peers, flow_server,
                                             monkeypatch):
    """Nobody consumes messages(): the flow's answer waits behind them in the
    SDK's sink, and launch_flow ends anyway, saying why."""
    from smartbus import aio
    from smartbus.errors import FlowTimeout
    monkeypatch.setattr(aio, "_FLOW_DELIVERY_SLACK_S", 1.0)
    peer = start_net_peer(peers, router, PEER_UNIT)
    c = make_client(max_buffered=10)

    async def main(c):
        assert peer.call(op="send", dst=c.address, count=100, max_size=10)["ok"]
        await until_full(c)
        t0 = time.monotonic()
        with pytest.raises(FlowTimeout) as err:
            await c.launch_flow(0, PROCESS, "aio", "echo", 0, 0.5, ["held up"])
        assert 1.4 <= time.monotonic() - t0 < 10
        assert err.value.detail == \
            "its answer was not delivered: the client's inbox is full, consume messages()"

    run_connected("asyncio", c, main)


# ---- cancellation and closing -----------------------------------------------------------

def test_cancelled_messages_and_launch_flow_leave_nothing(make_client, loop_kind, flow_server):
    c = make_client()
    threads_before = sdk_threads()

    async def main():
        await c.connect(timeout=10)

        async def consume():
            async for _ in c.messages():
                pass

        consumer = asyncio.ensure_future(consume())
        flow = asyncio.ensure_future(c.launch_flow(0, PROCESS, "aio", "sleep", 0, 30, [1.0]))
        await asyncio.sleep(0.3)
        assert not consumer.done() and not flow.done()
        assert len(c._message_waiters) == 1 and len(c._flows) == 1
        consumer.cancel()
        flow.cancel()
        for task in (consumer, flow):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert c._message_waiters == set() and c._flows == {}
        # the flow's late result (after 1 s) finds nothing waiting for it
        await asyncio.sleep(1.5)
        assert await c.launch_flow(0, PROCESS, "aio", "echo", 0, 10, ["still works"]) == \
            ["still works"]
        await c.close()
        await nothing_left(c, threads_before)

    run(loop_kind, main)


def test_close_with_events_in_flight(make_client, loop_kind, router, peers, flow_server):
    peer = start_net_peer(peers, router, PEER_UNIT)
    c = make_client(max_buffered=1000)
    threads_before = sdk_threads()

    async def main():
        await c.connect(timeout=10)
        peer.start_call(op="send", dst=c.address, count=30000, max_size=200)
        flow = asyncio.ensure_future(c.launch_flow(0, PROCESS, "aio", "sleep", 0, 30, [0.5]))
        connecting = asyncio.ensure_future(c.connect(timeout=30))   # registered: done at once
        received = 0

        async def consume():
            nonlocal received
            async for head, data in c.messages():
                assert data == payload(received, 200)
                received += 1
                if received == 2000:
                    await c.close()              # from inside the iteration

        consumer = asyncio.ensure_future(consume())
        await asyncio.wait_for(consumer, 30)     # the iteration ended with the close
        assert received == 2000                  # what close() dropped was not handed out
        with pytest.raises(RuntimeError, match="closed"):
            await flow
        await connecting
        await c.close()                          # idempotent
        await nothing_left(c, threads_before)
        assert peer.reply()["ok"]                # the peer was not disturbed
        with pytest.raises(RuntimeError, match="closed"):
            await c.launch_flow(0, PROCESS, "aio", "echo", 0, 10, [])
        with pytest.raises(RuntimeError, match="closed"):
            await c.connect()

    run(loop_kind, main)


def test_a_loop_closed_before_its_client(net_lib, router, peers, caplog):
    """Misuse: the loop ends without closing the client.  What arrives next
    is dropped with a warning (nothing raises on the SDK's thread), and the
    client can still be closed from another loop."""
    from smartbus import aio
    peer = start_net_peer(peers, router, PEER_UNIT)
    c = aio.NetClient(9, 11, "127.0.0.1", router.port)
    caplog.set_level(logging.WARNING, logger="smartbus.aio")

    async def connect():
        await c.connect(timeout=10)

    try:
        run("asyncio", connect)
        assert peer.call(op="send", dst=[TEST_UNIT, 9, 11], count=10, max_size=10)["ok"]
        assert wait_for(lambda: any("event loop was closed before the client" in r.getMessage()
                                    for r in caplog.records), 10)
    finally:
        asyncio.run(c.close())
    assert c.is_closed()


def test_arguments_and_misuse(net_lib, router):
    from smartbus import aio, errors
    from smartbus.errors import AlreadyExistsError, SmartBusError
    assert aio.FlowError is errors.FlowError and aio.FlowTimeout is errors.FlowTimeout
    assert {"FlowError", "FlowTimeout"} <= set(errors.__all__)
    assert issubclass(errors.FlowTimeout, errors.FlowError)
    assert issubclass(errors.FlowError, SmartBusError)
    with pytest.raises(ValueError, match="max_buffered"):
        aio.NetClient(10, 11, "127.0.0.1", router.port, max_buffered=0)
    with pytest.raises(ValueError, match="max_buffered_bytes"):
        aio.NetClient(10, 11, "127.0.0.1", router.port, max_buffered_bytes="lots")
    with pytest.raises(TypeError, match="max_buffered_bytes"):
        aio.NetClient(10, 11, "127.0.0.1", router.port, max_buffered_bytes=[1])
    with pytest.raises(TypeError):
        aio.NetClient(10, 11, "127.0.0.1", router.port, event_executor=None)
    with pytest.raises(ValueError, match="master_port"):
        aio.NetClient(10, 11, "127.0.0.1", 0)
    c = aio.NetClient(10, 11, "127.0.0.1", router.port)
    try:
        with pytest.raises(AlreadyExistsError):
            aio.NetClient(10, 11, "127.0.0.1", router.port)
        assert (c.client_id, c.client_type, c.unit_id) == (10, 11, TEST_UNIT)

        async def connect():
            # the sync client's errors: not registered yet, own unit, bad cmd
            with pytest.raises(SmartBusError) as err:
                c.send_data(1, 3, 0, 200, 3, b"too early")
            assert err.value.code == -2
            await c.connect(timeout=10)
            c.send_data(1, 3, 0, 200, 3, b"to nobody")      # dropped by the router, not an error
            with pytest.raises(SmartBusError) as err:
                c.send_data(1, 3, TEST_UNIT, 7, 11, b"to my own unit")
            assert err.value.code == -11
            with pytest.raises(ValueError, match="cmd"):
                c.send_data(300, 3, 0, 200, 3, b"")

        run("asyncio", connect)
        with pytest.raises(RuntimeError, match="another event loop"):
            run("asyncio", c.connect)
    finally:
        asyncio.run(c.close())


def test_net_client_needs_the_process_unit():
    """In a fresh process: no smartbus.net.Client.initialize, no NetClient."""
    code = ("from smartbus import aio\n"
            "try:\n"
            "    aio.NetClient(1, 11, '127.0.0.1', 8089)\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], env=package_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("NotInitializedError call smartbus.net.Client.initialize")


def test_the_docs_example_runs_as_written(server_process, short_tmp):
    """docs/asyncio.md's example (the README's too) against ``python -m
    smartbus.server``, on a free port and a private IPC socket."""
    doc = os.path.join(os.path.dirname(TESTS_DIR), "docs", "asyncio.md")
    if not os.path.isfile(doc):
        pytest.skip("docs/ is not at hand (the tests run against an installed package)")
    with open(doc, encoding="utf-8") as f:
        code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    path = os.path.join(short_tmp, "ipc")
    srv = server_process("--port", 0, "--ipc-path", path)
    srv.wait_ready()
    assert code.count('"127.0.0.1", 8089') == 1
    code = code.replace('"127.0.0.1", 8089', '"127.0.0.1", %d' % srv.port)
    out = subprocess.run([sys.executable, "-c", code], env=package_env(SMARTBUS_IPC_PATH=path),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["from unit 20 b'hello'", "[6.5]"]

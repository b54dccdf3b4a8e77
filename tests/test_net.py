"""NET clients end to end: two processes (units 16 and 17) through the real
router: data in both directions, ping, connect/disconnect and global
connect events."""

import time

from conftest import events_of, start_net_peer, wait_for

N_MESSAGES = 10000
MAX_SIZE = 65536


def test_exchange_10000_messages_both_ways(router, peers):
    a = start_net_peer(peers, router, 16)
    b = start_net_peer(peers, router, 17)
    # both directions at the same time: 10,000 messages of 0..64 KiB each way
    a.proc.stdin.write('{"op": "send", "dst": [17, 1, 11], "count": %d, "max_size": %d}\n'
                       % (N_MESSAGES, MAX_SIZE))
    a.proc.stdin.flush()
    sent_b = b.call(op="send", dst=[16, 1, 11], count=N_MESSAGES, max_size=MAX_SIZE, timeout=120)
    sent_a = a.replies.get(timeout=120)
    assert sent_a["ok"] and sent_b["ok"], (sent_a, sent_b)
    got_b = b.call(op="expect", count=N_MESSAGES, max_size=MAX_SIZE, timeout=120)
    got_a = a.call(op="expect", count=N_MESSAGES, max_size=MAX_SIZE, timeout=120)
    assert got_a["ok"], got_a
    assert got_b["ok"], got_b
    # head of the first message: cmd 5, cmd_type 3, from unit 16 client 1
    assert got_b["first"][0][:4] == [5, 3, 16, 1]
    stats = router.stats()
    assert stats["routed_msgs"] >= 2 * N_MESSAGES
    assert stats["dropped_no_route"] == 0


def test_ping_is_answered_by_the_peer_library(router, peers):
    a = start_net_peer(peers, router, 16)
    b = start_net_peer(peers, router, 17)
    assert a.call(op="ping", dst=[17, 1, 11], data="70696e6721")["ok"]

    def answers():
        return [d for d in a.call(op="received")["data"] if d[0] == 8]
    got = wait_for(answers, 5)
    assert got, "no ping answer"
    cmd, cmd_type, src_unit, src_client, length, data = got[0]
    assert (cmd, cmd_type, src_unit, src_client, data) == (8, 1, 17, 1, "70696e6721")
    # the pinged side also sees the ping itself (cmd 7)
    pings = wait_for(lambda: [d for d in b.call(op="received")["data"] if d[0] == 7], 5)
    assert pings and pings[0][2] == 16


def test_empty_ping_and_empty_data(router, peers):
    a = start_net_peer(peers, router, 16)
    b = start_net_peer(peers, router, 17)
    assert a.call(op="ping", dst=[17, 1, 11], data="")["ok"]
    assert a.call(op="send", dst=[17, 1, 11], count=1, max_size=0)["ok"]
    got = wait_for(lambda: (lambda d: len(d) >= 2 and d)(b.call(op="received")["data"]), 5)
    assert [d[:5] for d in got] == [[7, 1, 16, 1, 0], [5, 3, 16, 1, 0]]
    ans = wait_for(lambda: [d for d in a.call(op="received")["data"] if d[0] == 8], 5)
    assert ans and ans[0][4] == 0


def test_connect_disconnect_and_global_events(router, peers):
    a = start_net_peer(peers, router, 16, client_id=3, client_type=12)
    assert events_of(a, "connect") == [[0]]          # access point = the router's unit
    b = start_net_peer(peers, router, 17, client_id=4, client_type=13)
    # a hears of b's arrival (status 1); b is told a is already there (status 2)
    arrived = wait_for(lambda: [e for e in events_of(a, "global") if e[4] == 1], 5)
    assert arrived == [[17, 4, 13, 0, 1, "unit-17"]]
    present = wait_for(lambda: [e for e in events_of(b, "global") if e[4] == 2], 5)
    assert present == [[16, 3, 12, 0, 2, "unit-16"]]
    # each event exactly once (the router absorbs clients' own cmd 10 answers)
    time.sleep(0.3)
    assert len(events_of(b, "global")) == 1
    # b leaves: a hears status 0
    b.close()
    left = wait_for(lambda: [e for e in events_of(a, "global") if e[4] == 0], 5)
    assert left == [[17, 4, 13, 0, 0, "unit-17"]]
    assert len(events_of(a, "global")) == 2
    # the server goes away: a's on_disconnect fires
    router.stop()
    assert wait_for(lambda: events_of(a, "disconnect"), 5) == [[]]


def test_client_in_this_process_talks_to_a_peer(router, net_lib, peers):
    import threading
    got = []
    connected = threading.Event()

    class C(net_lib):
        def on_connect(self):
            connected.set()

        def on_data(self, head, data):
            got.append((head, data))

    c = C.create(7, 11, "127.0.0.1", router.port)
    try:
        c.activate()
        assert connected.wait(5)
        p = start_net_peer(peers, router, 16)
        c.send_data(9, 3, 16, 1, 11, bytearray(b"from the test process"))
        c.send_data(9, 3, 16, 1, 11, memoryview(b"xxmemoryviewxx")[2:-2])
        c.send_data(9, 3, 16, 1, 11, None)
        data = wait_for(lambda: (lambda d: len(d) >= 3 and d)(p.call(op="received")["data"]), 5)
        assert [bytes.fromhex(d[5]) for d in data] == [b"from the test process", b"memoryview", b""]
        assert data[0][:5] == [9, 3, 40, 7, len(b"from the test process")]
        assert p.call(op="send", dst=[40, 7, 11], count=3, max_size=100)["ok"]
        assert wait_for(lambda: len(got) == 3, 5)
        head, _ = got[0]
        assert (head.cmd, head.cmd_type, head.src_unit_id, head.src_unit_client_id,
                head.dst_unit_id, head.dst_unit_client_id, head.dst_unit_client_type) == \
            (5, 3, 16, 1, 40, 7, 11)
        assert "cmd=5" in repr(head)
    finally:
        c.dispose()


def test_dispose_right_after_sending_loses_nothing(router, net_lib, peers):
    """Closing flushes what was queued (bounded linger), like a socket's
    close: 20,000 messages sent and the client disposed at once all arrive."""
    import threading
    p = start_net_peer(peers, router, 16)
    ok = threading.Event()

    class C(net_lib):
        def on_connect(self):
            ok.set()

    c = C.create(12, 11, "127.0.0.1", router.port)
    c.activate()
    assert ok.wait(5)
    for i in range(20000):
        c.send_data(5, 3, 16, 1, 11, b"%05d" % i + b"x" * 1000)
    c.dispose()
    assert wait_for(lambda: len(p.call(op="received")["data"]) == 20000, 15)
    data = p.call(op="received")["data"]
    assert [bytes.fromhex(d[5])[:5] for d in data] == [b"%05d" % i for i in range(20000)]

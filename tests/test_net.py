"""NET clients end to end through the real router: two peer processes
(units 16 and 17) exchanging data both ways, ping answered by the peer's
library, empty payloads, a client of this process (unit 40) talking to a
peer with every kind of payload, the client's view of connect and
disconnect, and dispose flushing what was queued.  The router's own rules
are in test_router.py."""

from helpers import TEST_UNIT, exchange_both_ways, start_net_peer, wait_for

N_MESSAGES = 10000
MAX_SIZE = 65536


def test_exchange_10000_messages_both_ways(router, peers):
    a = start_net_peer(peers, router, 16)
    b = start_net_peer(peers, router, 17)
    # both directions at the same time: 10,000 messages of 0..64 KiB each way
    got_a, got_b = exchange_both_ways(a, [17, 1, 11], b, [16, 1, 11], N_MESSAGES, MAX_SIZE)
    # head of the first message: cmd 5, cmd_type 3, from unit 16 client 1
    assert got_b["first"][0][:4] == [5, 3, 16, 1]
    assert got_a["first"][0][:4] == [5, 3, 17, 1]
    stats = router.stats()
    assert stats["routed_msgs"] >= 2 * N_MESSAGES
    assert stats["dropped_no_route"] == 0


def test_ping_is_answered_by_the_peer_library(router, peers):
    a = start_net_peer(peers, router, 16)
    b = start_net_peer(peers, router, 17)
    assert a.call(op="ping", dst=[17, 1, 11], data="70696e6721")["ok"]
    got = wait_for(lambda: [d for d in a.received() if d[0] == 8], 5)
    assert got, "no ping answer"
    cmd, cmd_type, src_unit, src_client, length, data = got[0]
    assert (cmd, cmd_type, src_unit, src_client, length, data) == (8, 1, 17, 1, 5, "70696e6721")
    # the pinged side also sees the ping itself (cmd 7)
    pings = wait_for(lambda: [d for d in b.received() if d[0] == 7], 5)
    assert pings and pings[0][2] == 16


def test_empty_ping_and_empty_data(router, peers):
    a = start_net_peer(peers, router, 16)
    b = start_net_peer(peers, router, 17)
    assert a.call(op="ping", dst=[17, 1, 11], data="")["ok"]
    assert a.call(op="send", dst=[17, 1, 11], count=1, max_size=0)["ok"]
    assert [d[:5] for d in b.received(2)] == [[7, 1, 16, 1, 0], [5, 3, 16, 1, 0]]
    ans = wait_for(lambda: [d for d in a.received() if d[0] == 8], 5)
    assert ans and ans[0][4] == 0


def test_client_in_this_process_talks_to_a_peer(router, net_client, peers):
    c = net_client(7, router.port)
    assert c.log.of("connect") == [(0,)]                 # access point = the router's unit
    assert c.access_unit_id == 0 and c.is_connected()
    p = start_net_peer(peers, router, 16)
    c.send_data(9, 3, 16, 1, 11, bytearray(b"from the test process"))
    c.send_data(9, 3, 16, 1, 11, memoryview(b"xxmemoryviewxx")[2:-2])
    c.send_data(9, 3, 16, 1, 11, None)
    data = p.received(3)
    assert [bytes.fromhex(d[5]) for d in data] == [b"from the test process", b"memoryview", b""]
    assert data[0][:5] == [9, 3, TEST_UNIT, 7, len(b"from the test process")]
    assert p.call(op="send", dst=[TEST_UNIT, 7, 11], count=3, max_size=100)["ok"]
    got = c.log.wait("data", 3)
    assert len(got) == 3
    head, _ = got[0]
    assert (head.cmd, head.cmd_type, head.src_unit_id, head.src_unit_client_id,
            head.dst_unit_id, head.dst_unit_client_id, head.dst_unit_client_type) == \
        (5, 3, 16, 1, TEST_UNIT, 7, 11)
    assert "cmd=5" in repr(head)
    # the server goes away: on_disconnect fires, the client is no longer connected
    router.stop()
    assert c.log.wait("disconnect") == [()]
    assert not c.is_connected()


def test_dispose_right_after_sending_loses_nothing(router, net_client, peers):
    """Closing flushes what was queued (bounded linger), like a socket's
    close: 20,000 messages sent and the client disposed at once all arrive."""
    p = start_net_peer(peers, router, 16)
    c = net_client(12, router.port)
    for i in range(20000):
        c.send_data(5, 3, 16, 1, 11, b"%05d" % i + b"x" * 1000)
    c.dispose()
    data = p.received(20000, timeout=15)
    assert [bytes.fromhex(d[5])[:5] for d in data] == [b"%05d" % i for i in range(20000)]

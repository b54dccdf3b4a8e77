"""The router forwards a burst (many packets in one read) as it forwards
one packet (docs/router.md "Events and routing"): every packet to its
destination, in the order sent, stamped with the sender's registered
source, its padding dropped, whether it goes out of the sender's read
buffer at once (a run to an idle destination) or waits in the out buffer
behind bytes the destination has not taken (a slow reader), and whatever
the router's own packets (heartbeat answers) come in between."""

import struct
import threading

from helpers import data_packet, raw_client, wait_for

PACKETS = 3000


def registered(router, unit, client_id, **kwargs):
    conn = raw_client(router.port, unit, client_id, **kwargs)
    conn.recv_packet(cmd=2)
    return conn


def forwarded(packet):
    """What the router makes of a packet from (16, 1, 11): the bytes a
    destination must receive."""
    datalen = struct.unpack_from("<i", packet, 16)[0]
    return packet[:12] + struct.pack("<i", 20 + datalen) + packet[16:20 + datalen]


def test_bursts_to_two_destinations_arrive_whole_and_in_order(make_router):
    router = make_router(max_out_bytes=64 << 10, stall_timeout=60)
    sender = registered(router, 16, 1)
    fast = registered(router, 17, 1)
    # a receive buffer below the loopback MSS (64 KiB) would leave the
    # router's writes to the persist timer (zero window, backoff): slow it
    # is, but not pathological
    slow = registered(router, 17, 2, rcvbuf=256 << 10)
    slow.pause_reading()
    expected = {17: [], 18: []}          # by cmd: 17 to fast, 18 to slow
    burst = bytearray()
    for i in range(PACKETS):
        # runs of 1..7 packets to one destination, then the other; the
        # source the sender names is wrong on purpose (the router stamps its
        # registered one); some are padded (the run is cut where padding is)
        to_fast = (i // 7 + i % 3) % 2 == 0
        cmd = 17 if to_fast else 18
        pkt = data_packet((40, 9, 99), (17, 1 if to_fast else 2, 11),
                          struct.pack("<i", i) + bytes(i % 200 * 80), cmd=cmd, pad=i % 5 == 0)
        expected[cmd].append(forwarded(pkt[:4] + bytes([11, 16, 1]) + pkt[7:]))
        burst += pkt
        if i % 500 == 499:               # the sender's heartbeat in between (answered, not forwarded)
            burst += data_packet((16, 1, 11), (0, 0, 0), b"", cmd=5, cmd_type=0)
    # sent from a thread: the router stops taking it while the slow one
    # does not read
    writer = threading.Thread(target=sender.send, args=(bytes(burst),), daemon=True)
    writer.start()
    # the slow one's queue fills (its socket took what it could): the
    # sender waits for it, then it reads again
    assert wait_for(lambda: router.stats()["paused_reads"] >= 1, 10), router.stats()
    slow.resume_reading()
    got_fast = [fast.recv_packet(timeout=10, cmd=17) for _ in expected[17]]
    assert got_fast == expected[17]
    got_slow = [slow.recv_packet(timeout=10, cmd=18) for _ in expected[18]]
    assert got_slow == expected[18]
    writer.join(10)
    assert not writer.is_alive()
    st = router.stats()                  # every packet is out: the counts are final
    assert st["routed_msgs"] == PACKETS and st["paused_reads"] >= 1, st
    assert st["routed_bytes"] == sum(len(p) - 20 for p in expected[17] + expected[18]), st
    assert st["dropped_no_route"] == 0 and st["stalled_disconnects"] == 0, st

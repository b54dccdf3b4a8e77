"""A ping on an idle link is written by the calling thread (no hand-off to
the SDK's I/O thread; stats()["direct_msgs"] counts them), and that is
safe beside the I/O thread and other senders: pings and data from several
threads of one client all arrive, whole and in each thread's order, with
heartbeats going on; a ping the kernel takes only part of is finished by
the I/O thread before anything else (the byte stream stays whole)."""

import os
import random
import time

from smartbus.errors import SmartBusError

from helpers import WireServer, register_ack, run_threads, start_net_peer, wait_for

PEER_UNIT = 16
PING = 7           # SMARTBUS_SYSCMD_PING
PING_ACK = 8


def test_pings_on_an_idle_link_skip_the_queue(router, net_client, peers):
    p = start_net_peer(peers, router, PEER_UNIT)
    c = net_client(7, router.port)
    for i in range(50):
        c.ping(PEER_UNIT, 1, 11, b"ping %d" % i)
        assert wait_for(lambda: len(c.received(PING_ACK)) == i + 1, 5), i
    assert [d for _, d in c.received(PING_ACK)] == [b"ping %d" % i for i in range(50)]
    st = c.stats()
    # the I/O thread sleeps between round trips: most pings find the link
    # idle (a few meet it awake, for a heartbeat, and are queued)
    assert 25 <= st["direct_msgs"] <= 50, st
    assert st["sent_msgs"] == 50 and st["queued_msgs"] == 0
    # data is always queued: one system call per message would cost throughput
    c.send_data(1, 3, PEER_UNIT, 1, 11, b"data")
    assert p.received(51)[-1][5] == b"data".hex()
    assert c.stats()["direct_msgs"] == st["direct_msgs"]


def test_threads_mixing_pings_and_data_on_one_client(router, net_client, peers):
    """4 threads x 300 (ping, send_data) pairs with short pauses (so the
    link goes idle now and then): the peer gets all 2,400, each thread's in
    its order; every ping is answered; the link never broke."""
    p = start_net_peer(peers, router, PEER_UNIT)
    c = net_client(7, router.port)
    threads_n, pairs = 4, 300

    def run(t):
        rnd = random.Random(t)
        for i in range(pairs):
            c.ping(PEER_UNIT, 1, 11, b"p%d.%d" % (t, i) + bytes(rnd.randrange(200)))
            c.send_data(1, 3, PEER_UNIT, 1, 11, b"d%d.%d" % (t, i))
            if rnd.random() < 0.1:
                time.sleep(0.002)

    errors = run_threads(run, threads_n)
    assert not errors, errors
    got = p.received(threads_n * pairs * 2, timeout=20)
    assert len(got) == threads_n * pairs * 2
    for t in range(threads_n):
        mine = [bytes.fromhex(d[5]) for d in got
                if bytes.fromhex(d[5]).split(b".")[0][1:] == b"%d" % t]
        want = []
        for i in range(pairs):
            want += [b"p%d.%d" % (t, i), b"d%d.%d" % (t, i)]
        assert [m[:len(w)] for m, w in zip(mine, want)] == want
        assert [d[0] for d in got if bytes.fromhex(d[5]).startswith(b"p%d." % t)] == [PING] * pairs
    assert wait_for(lambda: len(c.received(PING_ACK)) == threads_n * pairs, 10)
    assert c.log.of("disconnect") == []
    assert c.stats()["direct_msgs"] > 0, c.stats()


def test_a_ping_the_kernel_takes_part_of(short_tmp, ipc_client):
    """A server that stops reading: big pings fill the socket (the last one
    written directly is likely taken in part), then the queue (-7).  Once
    it reads again, every accepted ping arrives whole and in order."""
    with WireServer(os.path.join(short_tmp, "s")) as srv:
        c = ipc_client(20, srv.path, connect=False)
        conn = srv.accept()
        conn.recv_packet()                               # the registration
        conn.send(register_ack(5))
        assert c.connected.wait(5)
        conn.pause_reading()
        size = 50000
        accepted = 0
        for i in range(3000):
            try:
                c.ping(5, 1, 11, i.to_bytes(4, "big") * (size // 4))
            except SmartBusError as exc:
                assert exc.code == -7
                break
            accepted += 1
            if i % 20 == 0:
                time.sleep(0.001)                        # let the I/O thread sleep again
        assert 0 < c.stats()["direct_msgs"] < accepted
        assert c.stats()["queued_msgs"] > 0
        conn.resume_reading()
        for i in range(accepted):
            pkt = conn.recv_packet(timeout=20, cmd=PING)
            assert pkt[20:] == i.to_bytes(4, "big") * (size // 4), i

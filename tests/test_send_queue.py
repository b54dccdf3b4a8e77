"""The send queue shared by several threads of one client: every message
each thread had accepted arrives, in that thread's order, with the queue's
bound holding exactly (100,000 messages, then -7) while the server does
not read; and it goes on at full speed from several threads through the
router, the I/O thread taking the queue while they append."""

from smartbus.errors import SmartBusError

from helpers import WireServer, register_ack, run_threads, start_net_peer

MAX_QUEUED = 100000        # the send queue's bound in messages (README: -7)
THREADS = 4


def payload(t, i, size=64):
    return bytes([t]) + i.to_bytes(4, "big") + bytes(size - 5)


def test_threads_fill_the_queue_to_its_bound_and_nothing_is_lost(net_client):
    with WireServer() as srv:
        c = net_client(7, srv.port, connect=False)
        conn = srv.accept(answer_heartbeats=True)
        conn.recv_packet()                                # the registration
        conn.send(register_ack(0))
        assert c.connected.wait(5)
        conn.pause_reading()
        accepted = [0] * THREADS

        def fill(t):
            i = 0
            while True:
                try:
                    c.send_data(1, 3, 0, 2, 11, payload(t, i))
                except SmartBusError as exc:
                    assert exc.code == -7, exc
                    break
                i += 1
            accepted[t] = i

        errors = run_threads(fill, THREADS)
        assert not errors, errors
        # the queue holds exactly its bound (the rest is in the socket buffers)
        assert c.stats()["queued_msgs"] == MAX_QUEUED, c.stats()
        assert c.stats()["send_full"] >= THREADS
        conn.resume_reading()
        got = {t: [] for t in range(THREADS)}
        for _ in range(sum(accepted)):
            pkt = conn.recv_packet(timeout=20, cmd=1)
            got[pkt[20]].append(int.from_bytes(pkt[21:25], "big"))
        for t in range(THREADS):
            assert got[t] == list(range(accepted[t])), t
        conn.close()              # else closing the client lingers on what is left


def test_threads_sending_through_the_router(router, net_client, peers):
    p = start_net_peer(peers, router, 16)
    c = net_client(7, router.port)
    per_thread = 20000

    def send(t):
        i = 0
        while i < per_thread:
            try:
                c.send_data(1, 3, 16, 1, 11, payload(t, i, 8))
                i += 1
            except SmartBusError as exc:
                assert exc.code == -7, exc     # full for a moment: again

    errors = run_threads(send, THREADS)
    assert not errors, errors
    got = p.received(THREADS * per_thread, timeout=60)
    assert len(got) == THREADS * per_thread
    seqs = {t: [] for t in range(THREADS)}
    for d in got:
        data = bytes.fromhex(d[5])
        seqs[data[0]].append(int.from_bytes(data[1:5], "big"))
    for t in range(THREADS):
        assert seqs[t] == list(range(per_thread)), t

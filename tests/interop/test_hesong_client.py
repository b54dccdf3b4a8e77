"""Wire compatibility with Hesong's NET client (libbusnetcli.so, build C
1.0.1.0465 from hesong-ipsc-busnetcli 3.2.1.post1): the Hesong library on
one end of the wire, our router and our smartbus.net.Client on the other.

The Hesong client runs in its own process (tests/hesong_peer.py); our
client runs in this process with unit TEST_UNIT (40); our router has unit 5.
"""

import time

import pytest

from helpers import TEST_UNIT as OUR_UNIT, wait_for

from .conftest import ROUTER_UNIT, HesongProcess

pytestmark = pytest.mark.interop

HESONG = dict(unit=20, client_id=5, client_type=11)
SIZES = [0, 1, 5, 64, 1000, 65536]


def payload(size, salt):
    """``size`` bytes that differ per size and direction (zero bytes included)."""
    return bytes((i * 7 + size + salt) & 0xFF for i in range(size))


def head_fields(head):
    """Our Head as the tuple the checks compare."""
    return (head.cmd, head.cmd_type, head.src_unit_client_type, head.src_unit_id,
            head.src_unit_client_id, head.dst_unit_client_type, head.dst_unit_id,
            head.dst_unit_client_id, head.packet_size, head.data_length)


def hesong_head_fields(h):
    """The head the Hesong library passed to its receive callback, same order."""
    return (h["cmd"], h["cmdtype"], h["src_type"], h["src_unit"], h["src_client"],
            h["dst_type"], h["dst_unit"], h["dst_client"], h["packet_size"], h["datalen"])


def globals_since(net_lib, mark):
    """Global-connect events seen by this process since ``mark``."""
    return [list(e) for e in net_lib.global_events[mark:]]


#: longer than the ~14.9 s after which the Hesong client drops a silent link
LIVENESS_S = 20.0


@pytest.fixture(scope="module", autouse=True)
def idle_hesong_link(hesong_lib):
    """A Hesong client registered with a router of its own, then left alone.
    It starts with this module's first test so that its LIVENESS_S seconds
    pass while the other tests run; test_hesong_link_stays_up_20s, the
    module's last test, waits for what is left and checks the link."""
    from smartbus.server import Server
    with Server(unit_id=ROUTER_UNIT) as router:
        v = HesongProcess(hesong_lib).start(router.port, **HESONG)
        try:
            connected = v.wait("connect")
            yield router, v, connected, router.stats(), time.monotonic()
        finally:
            v.close()


# ---- 1. data both ways ------------------------------------------------------------

def test_data_both_ways_between_hesong_and_our_client(make_router, hesong, net_client):
    router = make_router(unit_id=ROUTER_UNIT)
    me = net_client(7, router.port, 12, info="ours-data")
    v = hesong().start(router.port, **HESONG)
    v.wait("connect", lambda e: e[2] == 0)
    my_triple = (OUR_UNIT, 7, 12)

    # Hesong -> ours
    for k, size in enumerate(SIZES):
        assert v.send(40 + k, 3, my_triple, payload(size, 1))["rc"] == 0
    got = me.log.wait("data", len(SIZES), timeout=10)
    assert len(got) == len(SIZES), "our client received %d of %d messages" % (len(got),
                                                                             len(SIZES))
    for k, (size, (head, data)) in enumerate(zip(SIZES, got)):
        # src/dst triples as (type, unit, client); packet_size without the
        # Hesong client's padding (the router forwards 20 + datalen)
        assert head_fields(head) == (40 + k, 3, 11, 20, 5, 12, OUR_UNIT, 7, 20 + size, size), \
            (size, head)
        assert data == payload(size, 1), "Hesong -> ours, %d bytes: contents differ" % size

    # ours -> Hesong
    for k, size in enumerate(SIZES):
        me.send_data(60 + k, 3, 20, 5, 11, payload(size, 2))
    recv = v.wait("recv", count=len(SIZES))
    assert len(recv) == len(SIZES)
    for k, (size, (clientid, head, data_hex, n)) in enumerate(zip(SIZES, recv)):
        assert clientid == 5
        assert hesong_head_fields(head) == (60 + k, 3, 12, OUR_UNIT, 7, 11, 20, 5, 20 + size,
                                            size), (size, head)
        assert head["flag"] == 0x5B15
        assert n == size
        assert bytes.fromhex(data_hex) == payload(size, 2), \
            "ours -> Hesong, %d bytes: contents differ" % size
    assert router.stats()["dropped_no_route"] == 0


# ---- 2. ping both ways ------------------------------------------------------------

def test_ping_both_ways_is_answered_by_each_library(make_router, hesong, net_client):
    router = make_router(unit_id=ROUTER_UNIT)
    me = net_client(7, router.port, 12)
    v = hesong().start(router.port, **HESONG)
    v.wait("connect", lambda e: e[2] == 0)
    my_triple = (OUR_UNIT, 7, 12)

    # ours pings the Hesong client: its library answers by itself (cmd 8)
    for data in (b"ping from ours", b""):
        me.ping(20, 5, 11, data)
        answers = wait_for(lambda: [x for x in me.received(8) if x[1] == data], 5)
        assert answers, "no ping answer from the Hesong client for %r: %s" % (data, v.diagnostics())
        head, _ = answers[0]
        assert head_fields(head) == (8, 1, 11, 20, 5, 12, OUR_UNIT, 7, 20 + len(data),
                                     len(data))
    # ... and also delivers the requests to its application (cmd 7)
    pings = v.wait("recv", lambda e: e[1]["cmd"] == 7, count=2)
    assert [(hesong_head_fields(h)[:8], bytes.fromhex(d)) for _, h, d, _ in pings] == [
        ((7, 1, 12, OUR_UNIT, 7, 11, 20, 5), b"ping from ours"),
        ((7, 1, 12, OUR_UNIT, 7, 11, 20, 5), b"")]

    # the Hesong client pings ours: our library answers by itself
    for data in (b"ping from hesong", b""):
        assert v.ping(my_triple, data)["rc"] == 0
    answers = v.wait("recv", lambda e: e[1]["cmd"] == 8, count=2)
    assert [(hesong_head_fields(h), bytes.fromhex(d), n) for _, h, d, n in answers] == [
        ((8, 1, 12, OUR_UNIT, 7, 11, 20, 5, 36, 16), b"ping from hesong", 16),
        ((8, 1, 12, OUR_UNIT, 7, 11, 20, 5, 20, 0), b"", 0)]
    # ... and our application sees the requests (cmd 7)
    requests = wait_for(lambda: len(me.received(7)) >= 2 and me.received(7), 5)
    assert requests, me.log.timed()
    assert [(head_fields(h)[:8], d) for h, d in requests] == [
        ((7, 1, 11, 20, 5, 12, OUR_UNIT, 7), b"ping from hesong"),
        ((7, 1, 11, 20, 5, 12, OUR_UNIT, 7), b"")]


# ---- 3. global connect --------------------------------------------------------------

def test_global_connect_events_both_ways(make_router, hesong, net_client, net_lib):
    router = make_router(unit_id=ROUTER_UNIT)
    mark = len(net_lib.global_events)
    a = net_client(7, router.port, 12, info="ours-a")
    v = hesong().start(router.port, info="the-hesong", **HESONG)
    v.wait("connect", lambda e: e[2] == 0)

    # the Hesong client is told that our client a is already there (status 2) ...
    present = v.wait("global", lambda e: e[4] == 2)
    assert present == [[OUR_UNIT, 7, 12, ROUTER_UNIT, 2, "ours-a"]]
    # ... and we hear of its arrival (status 1)
    hesong_event = [20, 5, 11, ROUTER_UNIT]
    arrived = wait_for(lambda: [e for e in globals_since(net_lib, mark)
                                if e[:4] == hesong_event and e[4] == 1], 5)
    assert arrived == [hesong_event + [1, "the-hesong"]]

    # our client b arrives: the Hesong client sees status 1; we learn
    # that it is already there (status 2)
    b = net_client(8, router.port, 13, info="ours-b")
    new = v.wait("global", lambda e: e[4] == 1)
    assert new == [[OUR_UNIT, 8, 13, ROUTER_UNIT, 1, "ours-b"]]
    already = wait_for(lambda: [e for e in globals_since(net_lib, mark)
                                if e[:4] == hesong_event and e[4] == 2], 5)
    assert already == [hesong_event + [2, "the-hesong"]]

    # b leaves: the Hesong client sees status 0
    b.dispose()
    left = v.wait("global", lambda e: e[4] == 0)
    assert left == [[OUR_UNIT, 8, 13, ROUTER_UNIT, 0, "ours-b"]]

    # the Hesong client leaves (its process ends): we see status 0
    v.close()
    gone = wait_for(lambda: [e for e in globals_since(net_lib, mark)
                             if e[:4] == hesong_event and e[4] == 0], 5)
    assert gone == [hesong_event + [0, "the-hesong"]]

    # every event exactly once (the Hesong client's own cmd 10 answers to our
    # clients' arrival are absorbed by the router, NET.md §10)
    time.sleep(0.3)
    assert [e for e in v.of("global")] == present + new + left
    about_hesong = [e for e in globals_since(net_lib, mark) if e[:4] == hesong_event]
    assert [e[4] for e in about_hesong] == [1, 2, 0], about_hesong
    assert a.log.of("disconnect") == []


# ---- 4. refused registrations ---------------------------------------------------------

def test_credentials_checked_by_router(make_router, hesong):
    """Four Hesong clients at once (units 20..23): wrong password -6, wrong
    user -5, none -4, right ones 0."""
    router = make_router(unit_id=ROUTER_UNIT, user="bus", password="secret")
    cases = [("bus", "wrong", -6), ("nobody", "secret", -5), (None, None, -4),
             ("bus", "secret", 0)]
    clients = [hesong().start(router.port, unit=20 + k, client_id=5, user=user,
                              password=password)
               for k, (user, password, _) in enumerate(cases)]
    for v, (user, password, code) in zip(clients, cases):
        assert v.wait("connect")[0][:3] == [5, ROUTER_UNIT, code], (user, password)
    # any failure other than -10 is final: the Hesong client does not come
    # back (it would after 2 s), and it has no registered link
    time.sleep(2.6)
    for v, (_, _, code) in zip(clients, cases):
        assert len(v.of("connect")) == 1, v.of("connect")
        assert v.send(1, 3, (30, 1, 11), b"x")["rc"] == (0 if code == 0 else -2)
    st = router.stats()
    assert (st["accepted"], st["refused"], st["registered"], st["clients"]) == (4, 3, 1, 1), st


def test_duplicate_unit_and_client_gets_minus_10(make_router, hesong):
    router = make_router(unit_id=ROUTER_UNIT)
    first = hesong().start(router.port, info="first", **HESONG)
    first.wait("connect", lambda e: e[2] == 0)
    second = hesong().start(router.port, info="second", **HESONG)
    # the newcomer is refused with -10 (already connected) ...
    assert second.wait("connect")[0][:3] == [5, ROUTER_UNIT, -10]
    # ... and retries every 2 s, refused again while the first one is there
    refused = second.wait("connect", count=2, timeout=5)
    assert [e[:3] for e in refused] == [[5, ROUTER_UNIT, -10]] * 2
    assert first.of("disconnect") == [] and len(first.of("connect")) == 1
    # the first one leaves: the next retry of the second succeeds
    first.close()
    accepted = second.wait("connect", lambda e: e[2] == 0, timeout=6)
    assert accepted[0][:3] == [5, ROUTER_UNIT, 0]
    assert router.stats()["clients"] == 1


# ---- 5. router killed and restarted ---------------------------------------------------

def test_hesong_reconnects_after_router_restart(router_process, hesong, net_client):
    r1 = router_process()
    port = r1.port
    me = net_client(7, port, 12)
    v = hesong().start(port, **HESONG)
    v.wait("connect", lambda e: e[2] == 0)
    assert v.send(1, 3, (OUR_UNIT, 7, 12), b"before")["rc"] == 0
    assert wait_for(lambda: me.received(1), 5)

    r1.kill()
    v.wait("disconnect")
    assert me.log.wait("disconnect")
    assert v.send(1, 3, (OUR_UNIT, 7, 12), b"x")["rc"] == -2     # no registered link

    router_process(port=port)
    # the Hesong client comes back by itself (it retries a refused connect every 2 s)
    v.wait("connect", lambda e: e[2] == 0, count=2, timeout=10)
    assert len(me.log.wait("connect", 2, timeout=10)) == 2, me.log.timed()
    assert v.of("connect")[-1][:3] == [5, ROUTER_UNIT, 0]

    # data flows again, both ways
    assert v.send(2, 3, (OUR_UNIT, 7, 12), b"after restart")["rc"] == 0
    got = wait_for(lambda: me.received(2), 5)
    assert got and got[0][1] == b"after restart"
    assert head_fields(got[0][0])[:8] == (2, 3, 11, 20, 5, 12, OUR_UNIT, 7)
    me.send_data(3, 3, 20, 5, 11, b"and back")
    back = v.wait("recv", lambda e: e[1]["cmd"] == 3)
    assert bytes.fromhex(back[0][2]) == b"and back"


# ---- 6. link liveness (keep last: see idle_hesong_link) ---------------------------------

def test_hesong_link_stays_up_20s(idle_hesong_link):
    router, v, connected, st0, t0 = idle_hesong_link
    # connection callback: (local client id, access point = our router's unit, ack 0)
    assert connected[0][:3] == [HESONG["client_id"], ROUTER_UNIT, 0]
    # nothing but heartbeats and their answers on the link for 20 s: the
    # Hesong client declares a link dead after ~14.9 s without a received
    # byte (NET.md §5.4), so only answered heartbeats keep it up, and the
    # router answers one every 5 s (heartbeat_answer_interval)
    while time.monotonic() < t0 + LIVENESS_S:
        time.sleep(0.5)
        assert v.proc.poll() is None, "the Hesong process died: %s" % v.diagnostics()
        assert not v.of("disconnect"), "link dropped after %.1f s: %s" % (
            time.monotonic() - t0, v.diagnostics())
    st = router.stats()
    elapsed = time.monotonic() - t0
    rate = (st["heartbeats"] - st0["heartbeats"]) / elapsed
    answers = st["heartbeat_answers"] - st0["heartbeat_answers"]

    assert len(v.of("connect")) == 1, v.of("connect")     # no re-registration
    assert (st["accepted"], st["registered"], st["closed"], st["clients"]) == (1, 1, 0, 1), st
    # build C heartbeats every 1 ms (~1000/s), and keeps doing so (no
    # resending or slowing down for the answers it does not get)
    assert rate > 200, "only %.0f heartbeats/s received" % rate
    assert elapsed / 5 - 1 <= answers <= elapsed / 5 + 1, (answers, elapsed)
    # still registered: SendData returns 0 (-2 without a registered link)
    assert v.send(1, 3, (21, 1, 11), b"x")["rc"] == 0

"""Router monitoring: Server.snapshot() (the SDK's smartbus_router_snapshot:
connections with identity, peer address, counters and queues, copied by
the router's loop) and the HTTP endpoint of smartbus.monitor (JSON at /
and /json, Prometheus text at /metrics), scraped while traffic flows."""

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import data_packet, raw_client, wait_for
from smartbus.monitor import parse_address
from smartbus.server import Server

REGISTRATION = 6025               # bytes of the NET registration our raw clients send


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.status, answer.headers["Content-Type"], answer.read()


def connection(snap, unit, client):
    found = [c for c in snap["connections"] if c["registered"] and
             (c["unit"], c["client"]) == (unit, client)]
    assert len(found) == 1, snap
    return found[0]


# ---- snapshots ------------------------------------------------------------------------------


def test_snapshot_counts_exactly(router):
    b = raw_client(router.port, 17, 2)
    ack = b.recv_packet(cmd=2)                             # its registration ack
    a = raw_client(router.port, 16, 1)
    assert len(a.recv_packet(cmd=2)) == len(ack)
    told = b.recv_packet(cmd=9)                            # told that a arrived
    assert len(a.recv_packet(cmd=10)) == len(told)         # told that b is there
    payload = b"0123456789"
    for _ in range(3):
        a.send(data_packet((16, 1, 11), (17, 2, 11), payload))
    for _ in range(3):
        assert b.recv_packet(cmd=1)[20:] == payload
    snap = router.snapshot()
    sa, sb = connection(snap, 16, 1), connection(snap, 17, 2)
    assert sa["kind"] == "net" and sa["type"] == 11
    assert sa["peer"] == "127.0.0.1:%d" % a.sock.getsockname()[1]
    assert sb["peer"] == "127.0.0.1:%d" % b.sock.getsockname()[1]
    # a: its registration and 3 packets in; the ack and the cmd 10 about b out
    assert (sa["msgs_in"], sa["bytes_in"]) == (4, REGISTRATION + 3 * 30)
    assert (sa["msgs_out"], sa["bytes_out"]) == (2, len(ack) + len(told))
    # b: its registration in; the ack, the cmd 9 about a and the 3 packets out
    assert (sb["msgs_in"], sb["bytes_in"]) == (1, REGISTRATION)
    assert (sb["msgs_out"], sb["bytes_out"]) == (5, len(ack) + len(told) + 3 * 30)
    for c in (sa, sb):
        assert c["queued_bytes"] == c["buffered_bytes"] == 0
        assert not c["paused"] and not c["congested"] and c["connected_for"] >= 0
    assert snap["stats"]["routed_msgs"] == 3 and snap["stats"]["clients"] == 2
    a.close()
    b.close()


def test_snapshot_shows_ipc_peers_and_unregistered_connections(router, smartbus_client):
    smartbus_client("ipc", info="in this process")
    stranger = socket.create_connection(("127.0.0.1", router.port))    # says nothing
    try:
        snap = wait_for(lambda: (lambda s: s if len(s["connections"]) == 2 else None)(
            router.snapshot()))
        ipc, new = snap["connections"]
        assert (ipc["kind"], ipc["registered"], ipc["unit"], ipc["client"]) == ("ipc", True, 0,
                                                                                200)
        assert ipc["peer"] == "pid %d" % os.getpid() and ipc["info"] == "in this process"
        assert (new["kind"], new["registered"]) == ("net", False)
        assert new["peer"] == "127.0.0.1:%d" % stranger.getsockname()[1]
    finally:
        stranger.close()


def test_snapshot_before_start_after_stop_and_with_many_connections():
    srv = Server()                                     # the loop is not running yet
    socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
    try:
        assert srv.snapshot()["connections"] == []     # accepted only by a running loop
        srv.start()
        socks += [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(70)]
        # more connections than a first call has room for (64): asked again
        assert wait_for(lambda: len(srv.snapshot()["connections"]) == 73)
        srv._router.stop()
        srv._thread.join(10)                           # stopped, not yet closed
        assert len(srv.snapshot()["connections"]) == 73
    finally:
        srv.stop()
        for s in socks:
            s.close()
    with pytest.raises(RuntimeError, match="closed"):
        srv.snapshot()


def test_snapshots_from_many_threads_while_traffic_flows(router, smartbus_client):
    a, b = smartbus_client("net"), smartbus_client("ipc")
    stop = threading.Event()
    results, failures = [], []

    def scrape():
        try:
            while not stop.is_set():
                results.append(router.snapshot(timeout=10)["stats"]["routed_msgs"])
        except Exception as exc:          # reported below
            failures.append(exc)

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(20000):
        a.send_data(1, 3, 0, b.client_id, 3, b"x" * 16)
    for _ in range(20000):
        b.next_message(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert not failures and len(results) > 4
    assert router.snapshot()["stats"]["routed_msgs"] == 20000


# ---- the HTTP endpoint ---------------------------------------------------------------------------


def test_parse_address():
    assert parse_address("9000") == ("127.0.0.1", 9000)            # loopback unless told
    assert parse_address(":9000") == ("127.0.0.1", 9000)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:9") == ("::1", 9)
    for bad in ("x", "host:", "1:65536", "-1"):
        with pytest.raises(ValueError):
            parse_address(bad)


def metric_values(text):
    """{(name, labels as a sorted tuple): value} of Prometheus text, parsed
    by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.smartbus_server(monitor=("127.0.0.1", 0))
def test_endpoint_scraped_while_traffic_flows(router, smartbus_client):
    base = router.monitor.url
    assert base == "http://127.0.0.1:%d/" % router.monitor.address[1]
    a, b = smartbus_client("net", info="sender"), smartbus_client("ipc", info="receiver")
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            for _ in range(500):
                a.send_data(1, 3, 0, b.client_id, 3, b"y" * 100)
            time.sleep(0.01)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        scrapes = []
        for _ in range(4):
            status, ctype, body = get(base + "metrics")
            assert status == 200 and ctype.startswith("text/plain; version=")
            scrapes.append(metric_values(body.decode()))
            time.sleep(0.2)
        status, ctype, body = get(base + "json")
        assert status == 200 and ctype == "application/json"
        doc = json.loads(body)
    finally:
        stop.set()
        sender.join(10)
    routed = [s[("smartbus_router_routed_msgs_total", ())] for s in scrapes]
    assert routed == sorted(routed) and routed[-1] > routed[0] > 0      # counters move
    sent_label = (("client", str(a.client_id)), ("kind", "net"), ("type", "3"), ("unit", "40"))
    got_label = (("client", str(b.client_id)), ("kind", "ipc"), ("type", "3"), ("unit", "0"))
    ins = [s[("smartbus_router_connection_msgs_in_total", sent_label)] for s in scrapes]
    outs = [s[("smartbus_router_connection_msgs_out_total", got_label)] for s in scrapes]
    assert ins[-1] > ins[0] and outs[-1] > outs[0]
    last = scrapes[-1]
    assert last[("smartbus_router_clients", ())] == 2
    assert last[("smartbus_router_connections", ())] == 2
    assert last[("smartbus_router_info", (("unit", "0"), ("version", doc["server"]["version"])))] == 1
    assert ("smartbus_router_connection_queued_bytes", got_label) in last
    # the JSON: server, totals, connections with identity, peer, counters
    assert doc["server"]["unit_id"] == 0 and doc["server"]["ipc"] == router.ipc_path
    assert doc["server"]["tcp"] == "127.0.0.1:%d" % router.port
    assert doc["totals"]["routed_msgs"] >= routed[-1] and doc["totals"]["connections"] == 2
    by_info = {c["info"]: c for c in doc["connections"]}
    assert by_info["sender"]["unit"] == 40 and by_info["sender"]["bytes_in"] > 0
    assert by_info["receiver"]["kind"] == "ipc" and by_info["receiver"]["msgs_out"] > 0
    assert json.loads(get(base)[2]).keys() == doc.keys()                # / is the JSON too


@pytest.mark.smartbus_server(monitor=("127.0.0.1", 0))
def test_endpoint_answers_404_elsewhere_and_stops_with_the_router(router):
    base = router.monitor.url
    with pytest.raises(urllib.error.HTTPError) as err:
        get(base + "nothing")
    assert err.value.code == 404
    hammering = threading.Event()
    errors = []

    def hammer():
        while not hammering.is_set():
            try:
                get(base + "metrics", timeout=5)
            except OSError:           # refused once stopped: expected
                pass
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    router.stop()                     # while requests are in progress: no crash, no hang
    hammering.set()
    for t in threads:
        t.join(10)
    assert not errors
    with pytest.raises(OSError):
        get(base, timeout=2)


def test_monitor_port_in_use_is_an_error_and_frees_the_router():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1:%d for the monitor" % port):
            Server(port=0, monitor=("127.0.0.1", port))
    with Server(monitor=("::1", 0)) as srv:              # IPv6 loopback too
        assert srv.monitor.url == "http://[::1]:%d/" % srv.monitor.address[1]
        assert json.loads(get(srv.monitor.url)[2])["server"]["unit_id"] == 0

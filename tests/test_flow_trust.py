"""Flow replies a client can trust: every malformed result reaches
on_flow_error (never lost), a reply counts only when it comes from the IPSC
the invoke went to, and invoke ids do not start at 1 (not guessable by
another process).  The IPSC here is a bare IPC connection to the real
router that answers invokes with crafted packets."""

import logging

import pytest

from helpers import (FLOW_PROCESS, flow_events, raw_client, raw_ipc_client, settled,
                     start_net_peer, wait_for)

IPSC = 2                        # the client type of an IPSC (SMARTBUS_NODECLI_TYPE_IPSC)
ROUTER_UNIT = 0                 # the unit of the router fixture, which IPC clients take
MALFORMED = -99                 # smartbus.flows.MALFORMED_RESULT, pinned: it is documented


class BareIpsc:
    """An IPSC process on a bare connection: reads invokes, sends replies
    whose bytes the test chooses."""

    def __init__(self, conn):
        self.conn = conn

    def next_invoke(self):
        from smartbus import _native
        return _native.decode_packet(self.conn.recv_packet(cmd=11))

    def reply(self, invoke, kind, text=b"", code=1):
        """A flow ack or result for ``invoke`` (a decoded invoke packet)."""
        send_reply(self.conn, invoke, kind, text, code, (IPSC, ROUTER_UNIT, FLOW_PROCESS))


def send_reply(conn, invoke, kind, text=b"", code=1, src=(IPSC, ROUTER_UNIT, FLOW_PROCESS)):
    """Sends on ``conn`` a flow ack or result for ``invoke`` with source
    triple ``src`` (type, unit, client) in its head."""
    from smartbus import _native
    conn.send(_native.encode_packet({
        "kind": kind, "cmd": 13 if kind == "flow_ack" else 12, "cmdtype": 1,
        "src_type": src[0], "src_unit": src[1], "src_client": src[2],
        "dst_type": invoke["src_type"], "dst_unit": invoke["src_unit"],
        "dst_client": invoke["src_client"], "project_id": invoke["project_id"],
        "invoke_id": invoke["invoke_id"], "code": code, "text": text}))


@pytest.fixture
def ipsc(router):
    """Process FLOW_PROCESS of the router's unit, on a bare IPC connection."""
    from smartbus import _native
    conn = raw_ipc_client(router.ipc_path, FLOW_PROCESS, IPSC)
    assert _native.decode_packet(conn.recv_packet(cmd=2))["result"] == 0
    yield BareIpsc(conn)
    conn.close()


# ---- malformed results ----------------------------------------------------------------------

MALFORMED_RESULTS = {
    # deeper than json decodes on any Python we support: 3.11 stops near
    # 1,000 levels, 3.13 near 10,000, 3.14 (limited by the C stack) between
    # 30,000 and 100,000
    "nested 100,000 deep": b"[" * 100000 + b"]" * 100000,
    "not JSON": b'[1, "two"',
    "not CP936": b'["\xff\xfe"]',
    "a JSON object": b'{"a": 1}',
    "a JSON string": b'"text"',
    "a JSON number": b"42",
}


@pytest.mark.parametrize("what", sorted(MALFORMED_RESULTS))
def test_a_malformed_result_reaches_on_flow_error(caller, ipsc, what, caplog):
    iid = caller.launch_flow(ROUTER_UNIT, FLOW_PROCESS, "proj1", "f", 0, 5.0, [])
    invoke = ipsc.next_invoke()
    assert invoke["invoke_id"] == iid
    ipsc.reply(invoke, "flow_ack", b"ok")
    with caplog.at_level(logging.ERROR, logger="smartbus"):
        ipsc.reply(invoke, "flow_result", MALFORMED_RESULTS[what])
        assert settled(caller, iid)
    evs = flow_events(caller, iid)
    assert [e[0] for e in evs] == ["ack", "error"]
    kind, head, project, invoke_id, code = evs[1]
    assert (project, invoke_id, code) == ("proj1", iid, MALFORMED)
    assert (head.cmd, head.src_unit_client_type, head.src_unit_client_id) == (12, IPSC,
                                                                              FLOW_PROCESS)
    assert any("malformed result" in r.getMessage() and str(iid) in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def nested_lists(depth):
    """[[...[]...]]: ``depth`` lists, one in the other."""
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_well_formed_results_still_reach_on_flow_resp(caller, ipsc):
    for text, values in [(b"", []),
                         (b'[1, "\xd6\xd0", [2, {"k": null}]]', [1, "中", [2, {"k": None}]]),
                         (b"[" * 50 + b"]" * 50, nested_lists(50))]:
        iid = caller.launch_flow(ROUTER_UNIT, FLOW_PROCESS, "proj1", "f", 0, 5.0, [])
        invoke = ipsc.next_invoke()
        ipsc.reply(invoke, "flow_result", text)
        assert settled(caller, iid)
        assert [e[0] for e in flow_events(caller, iid)] == ["resp"]
        assert flow_events(caller, iid)[0][4] == values


# ---- who may answer ---------------------------------------------------------------------------

def test_only_the_invoked_ipsc_settles_a_flow(caller, ipsc, router, caplog):
    """Replies with the right invoke id from another unit, another process
    of the unit, or another client type are ignored (and logged); the
    invoked IPSC's reply then settles the flow."""
    # another client of the bus that learnt the invoke id: unit 30, client id and type of the IPSC
    intruder = raw_client(router.port, 30, FLOW_PROCESS, IPSC)
    try:
        intruder.recv_packet(cmd=2)
        iid = caller.launch_flow(ROUTER_UNIT, FLOW_PROCESS, "proj1", "f", 0, 5.0, [])
        invoke = ipsc.next_invoke()
        with caplog.at_level(logging.WARNING, logger="smartbus.sdk"):
            send_reply(intruder, invoke, "flow_ack", b"forged", src=(IPSC, 30, FLOW_PROCESS))
            send_reply(intruder, invoke, "flow_result", b'["forged"]',
                       src=(IPSC, 30, FLOW_PROCESS))
            # what the router lets through today for a forged head (the
            # trust-router stamps heads): another process, another type
            send_reply(intruder, invoke, "flow_result", b'["forged"]',
                       src=(IPSC, ROUTER_UNIT, FLOW_PROCESS + 1))
            send_reply(intruder, invoke, "flow_result", b'["forged"]',
                       src=(11, ROUTER_UNIT, FLOW_PROCESS))
            assert wait_for(lambda: sum("ignored" in r.getMessage() for r in caplog.records)
                            >= 4), [r.getMessage() for r in caplog.records]
        assert flow_events(caller, iid) == []
        ipsc.reply(invoke, "flow_ack", b"ok")
        ipsc.reply(invoke, "flow_result", b'["genuine"]')
        assert settled(caller, iid)
        assert [(e[0], e[4]) for e in flow_events(caller, iid)] == [("ack", 1),
                                                                     ("resp", ["genuine"])]
    finally:
        intruder.close()


def test_an_invoke_to_every_process_accepts_any_process_of_the_unit(caller, ipsc):
    iid = caller.launch_flow(ROUTER_UNIT, 255, "proj1", "f", 0, 5.0, [])
    invoke = ipsc.next_invoke()
    assert (invoke["dst_unit"], invoke["dst_client"]) == (ROUTER_UNIT, 255)
    ipsc.reply(invoke, "flow_result", b"[7]")
    assert settled(caller, iid)
    assert flow_events(caller, iid, "resp")[0][4] == [7]


def test_a_reply_naming_no_invoke_leaves_the_pending_flows_alone(caller, ipsc, router):
    """A flow result for invoke id 0 (which names an empty slot of the
    client's flow table) from the IPSC such a slot would match, unit 0
    process 0: ignored.  (It used to delete that slot: the count of pending
    flows went wrong, their timeouts stopped firing, and after enough such
    replies launch_flow spun forever; found by fuzz/client_stream.c.)"""
    from smartbus import _native
    other = raw_ipc_client(router.ipc_path, 0, IPSC)
    try:
        assert _native.decode_packet(other.recv_packet(cmd=2))["result"] == 0
        iid = caller.launch_flow(ROUTER_UNIT, FLOW_PROCESS, "proj1", "f", 0, 1.0, [])
        invoke = ipsc.next_invoke()                 # never answered: it must time out
        for bogus in (0, -1):
            send_reply(other, dict(invoke, invoke_id=bogus), "flow_result", b"[]",
                       src=(IPSC, ROUTER_UNIT, 0))
        assert settled(caller, iid, 5), "the flow's timers stopped"
        evs = flow_events(caller, iid)
        assert [e[0] for e in evs] == ["ack", "timeout"] and evs[0][4] == -25, evs
    finally:
        other.close()


# ---- invoke ids ------------------------------------------------------------------------------

def test_invoke_ids_start_at_random_per_process_and_count_up(router, peers, net_client):
    """Each process draws its first invoke id (1..2^30); ids then count up
    by one.  Two processes (and this one) do not share a sequence."""
    firsts = []
    for unit in (30, 31):
        p = start_net_peer(peers, router, unit)
        ids = [p.call(op="launch_flow", args=[ROUTER_UNIT, 9, "p", "f", 1, 1.0, []])["id"]
               for _ in range(3)]
        assert ids[1:] == [ids[0] + 1, ids[0] + 2], ids
        firsts.append(ids[0])
    c = net_client(7, router.port)
    here = c.launch_flow(ROUTER_UNIT, 9, "p", "f", 1, 1.0, [])
    assert all(1 <= i <= 2 ** 30 for i in firsts) and here > 0, (firsts, here)
    # equal only with a chance of about 2^-30 each
    assert len({firsts[0], firsts[1], here}) == 3, (firsts, here)
    assert 1 not in firsts, firsts

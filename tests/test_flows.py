"""Flows and notifications: NET and IPC clients launch flows on a
smartbus.ipsc.FlowServer through the real router (ack, result, errors,
timeouts, mode 1, 1,000 concurrent invokes), notifications reach its
handlers, and the invoke / notify packets equal the golden vectors."""

import json
import logging
import os
import threading
import time

import pytest

from helpers import (FLOW_PROCESS as PROCESS, WireServer, flow_events, head_of, ipc_packet,
                     load_vectors, register_ack, settled, start_ipc_peer, start_net_peer,
                     wait_for)


@pytest.fixture
def flow_server(router):
    """A FlowServer as process 1 of the router's unit, with test flows."""
    from smartbus.ipsc import FlowServer
    fs = FlowServer(process_index=PROCESS, ipc_path=router.ipc_path, max_workers=16)
    fs.calls = []
    fs.notes = []
    fs.filtered = []

    @fs.flow("proj1", "echo")
    def echo(*params):
        return list(params)

    @fs.flow("proj1", "add")
    def add(*params):
        return [sum(params)]

    @fs.flow("proj1", "double")
    def double(x):
        return (x * 2,)

    @fs.flow("proj1", "boom")
    def boom(*params):
        raise ValueError("bad input %s" % (params,))

    @fs.flow("proj1", "notalist")
    def notalist(*params):
        return 42

    @fs.flow("proj1", "slow")
    def slow(seconds):
        time.sleep(seconds)
        return ["late"]

    @fs.flow("proj1", "record")
    def record(*params):
        fs.calls.append(params)
        return ["recorded"]

    @fs.flow("项目", "流程")
    def chinese(*params):
        return ["结果"] + list(params)

    @fs.notification()
    def any_note(*args):
        fs.notes.append(args)

    @fs.notification(project_id="projN", title="T2")
    def only_t2(*args):
        fs.filtered.append(args)

    fs.start(timeout=5)
    try:
        yield fs
    finally:
        fs.stop()


def launch(caller, flow, params, mode=0, timeout=5.0, project="proj1"):
    return caller.launch_flow(0, PROCESS, project, flow, mode, timeout, params)


# ---- results --------------------------------------------------------------------------


ROUND_TRIP = [0, 1, -2, 2**31, -2**53, 3.25, -0.1, 1e300, 5e-324, "", "text",
              "中文文本：你好，世界", "mixed 中文 and ascii", [1, [2, ["三", 4.5]], []],
              {"k": "值", "n": [1, 2]}, True, False, None]


def test_result_round_trip(caller, flow_server):
    iid = launch(caller, "echo", ROUND_TRIP)
    assert iid > 0
    assert settled(caller, iid)
    evs = flow_events(caller, iid)
    assert [e[0] for e in evs] == ["ack", "resp"]
    kind, head, project, invoke_id, code, msg = evs[0]
    assert (project, invoke_id, code, msg) == ("proj1", iid, 1, "ok")
    # the ack and the result come from the FlowServer: type 2, unit 0, process 1
    assert (head.cmd, head.cmd_type, head.src_unit_client_type, head.src_unit_id,
            head.src_unit_client_id) == (13, 1, 2, 0, PROCESS)
    kind, head, project, invoke_id, params = evs[1]
    assert params == ROUND_TRIP and project == "proj1" and invoke_id == iid
    assert (head.cmd, head.src_unit_client_type, head.src_unit_client_id) == (12, 2, PROCESS)
    assert head.dst_unit_id == (40 if caller.kind == "net" else 0)

    iid = launch(caller, "add", [1, 2, 3.5])
    assert settled(caller, iid)
    assert flow_events(caller, iid, "resp")[0][4] == [6.5]


def test_chinese_project_and_flow_ids(caller, flow_server):
    iid = caller.launch_flow(0, PROCESS, "项目", "流程", 2, 5.0, ["参数"])   # mode 2 = 0
    assert settled(caller, iid)
    ack, resp = flow_events(caller, iid)
    assert ack[0] == "ack" and ack[2:5] == ("项目", iid, 1)
    assert resp[0] == "resp" and resp[2] == "项目" and resp[4] == ["结果", "参数"]


def test_text_outside_cp936_is_escaped(caller, flow_server):
    params = ["emoji \U0001F600", "\u00e9t\u00e9", "中文"]
    iid = launch(caller, "echo", params)
    assert settled(caller, iid)
    assert flow_events(caller, iid, "resp")[0][4] == params


def test_mode_1_runs_the_flow_without_a_result(caller, flow_server):
    iid = launch(caller, "record", ["fire", "and", "forget"], mode=1, timeout=0.5)
    assert wait_for(lambda: flow_server.calls, 5) == [("fire", "and", "forget")]
    assert wait_for(lambda: flow_events(caller, iid, "ack"))
    time.sleep(1.0)                                # past the caller's timeout
    assert [e[0] for e in flow_events(caller, iid)] == ["ack"]
    assert flow_events(caller, iid, "ack")[0][4] == 1


# ---- errors -------------------------------------------------------------------------------


def test_unknown_flow(caller, flow_server):
    iid = launch(caller, "nope", [1])
    assert settled(caller, iid)
    time.sleep(0.2)
    evs = flow_events(caller, iid)
    assert [e[0] for e in evs] == ["ack", "error"]
    assert evs[0][2:] == ("proj1", iid, -23, "unknown flow 'proj1/nope'")
    assert evs[1][2:] == ("proj1", iid, -23) and evs[1][1] is not None
    # mode 1: just the ack
    iid = launch(caller, "nope", [], mode=1)
    assert wait_for(lambda: flow_events(caller, iid))
    time.sleep(0.2)
    assert [(e[0], e[4]) for e in flow_events(caller, iid)] == [("ack", -23)]


def test_handler_exception_and_bad_return(caller, flow_server, caplog):
    caplog.set_level(logging.WARNING)
    iid = launch(caller, "boom", [42])
    assert settled(caller, iid)
    time.sleep(0.2)
    evs = flow_events(caller, iid)
    # the prompt ack 1, then the error (-99); no result
    assert [(e[0], e[4]) for e in evs] == [("ack", 1), ("error", -99)]
    logged = [r.getMessage() for r in caplog.records if r.name == "smartbus"]
    assert any("ValueError: bad input (42,)" in m and str(iid) in m for m in logged), logged
    # the FlowServer logs the exception with its traceback
    assert any(r.exc_info and r.name.startswith("smartbus.ipsc") for r in caplog.records)

    iid = launch(caller, "notalist", [])
    assert settled(caller, iid)
    assert [(e[0], e[4]) for e in flow_events(caller, iid)] == [("ack", 1), ("error", -99)]
    assert any("TypeError: flow handler returned int, not a list" in r.getMessage()
               for r in caplog.records if r.name == "smartbus")


def test_slow_handler_times_out_at_the_caller(caller, flow_server):
    t0 = time.monotonic()
    iid = launch(caller, "slow", [1.5], timeout=0.5)
    assert settled(caller, iid, 5)
    evs = flow_events(caller, iid)
    assert [e[0] for e in evs] == ["ack", "timeout"]
    assert evs[0][4] == 1                          # acknowledged at once
    assert evs[1][1] is None and evs[1][2:] == ("proj1", iid)
    # at the caller's timeout, not when the handler returns (1.5 s)
    took = [t for t, kind, _ in caller.log.timed() if kind == "flow_timeout"][0] - t0
    assert 0.4 <= took < 1.5, took
    # other flows are served meanwhile (worker pool): before the slow one returns
    iid2 = launch(caller, "add", [1, 1])
    assert settled(caller, iid2)
    answered = [t for t, kind, args in caller.log.timed() if kind == "flow_resp" and
                args[2] == iid2][0]
    assert answered - t0 < 1.5, answered - t0
    # the late result is ignored
    time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
    assert [e[0] for e in flow_events(caller, iid)] == ["ack", "timeout"]


def test_no_flow_server_times_out(caller, router):
    iid = caller.launch_flow(0, 9, "proj1", "echo", 0, 1.5, [])
    assert settled(caller, iid, 5)
    evs = flow_events(caller, iid)
    # the ack timeout is the timeout clamped to 1..5 s; no head on timeouts
    assert [(e[0], e[1]) for e in evs] == [("ack", None), ("timeout", None)]
    assert evs[0][2:] == ("proj1", iid, -25, "")


def test_1000_concurrent_invokes(caller, flow_server):
    ids = {}
    for i in range(1000):
        ids[launch(caller, "double", [i], timeout=30.0)] = i
    assert len(ids) == 1000
    assert len(caller.log.wait("flow_resp", 1000, timeout=30)) == 1000
    resps = {iid: params for _, _, iid, params in caller.log.of("flow_resp")}
    acks = {iid: code for _, _, iid, code, _ in caller.log.of("flow_ack")}
    others = [e for e in caller.log.timed() if e[1] in ("flow_timeout", "flow_error")]
    assert others == []
    assert set(resps) == set(ids) and set(acks) == set(ids)
    assert all(code == 1 for code in acks.values())
    assert all(resps[iid] == [2 * i] for iid, i in ids.items())


# ---- arguments --------------------------------------------------------------------------------


def test_launch_flow_and_notify_arguments(caller):
    big = ["x" * 32765]                             # 32,769 bytes of JSON
    with pytest.raises(ValueError, match="limit is 32768"):
        caller.launch_flow(0, PROCESS, "proj1", "echo", 0, 1, big)
    with pytest.raises(ValueError, match="limit is 32768"):
        caller.launch_flow(0, PROCESS, "proj1", "echo", 0, 1, ["中" * 16383])   # 2 bytes each
    with pytest.raises(TypeError):
        caller.launch_flow(0, PROCESS, "proj1", "echo", 0, 1, "not a list")
    with pytest.raises(ValueError, match="JSON"):
        caller.launch_flow(0, PROCESS, "proj1", "echo", 0, 1, [float("nan")])
    with pytest.raises(ValueError, match="JSON"):
        caller.launch_flow(0, PROCESS, "proj1", "echo", 0, 1, [object()])
    with pytest.raises(ValueError):
        caller.launch_flow(0, PROCESS, "p" * 32, "echo", 0, 1, [])
    with pytest.raises(ValueError):
        caller.launch_flow(0, PROCESS, "proj1", "echo", 3, 1, [])
    with pytest.raises(ValueError):
        caller.launch_flow(0, PROCESS, "proj1", "echo", 0, -1, [])
    with pytest.raises(ValueError, match="limit is 32768"):
        caller.notify(0, PROCESS, "projN", "t", 0, 1, "y" * 32769)
    with pytest.raises(ValueError, match="limit is 32768"):
        caller.notify(0, PROCESS, "projN", "t", 0, 1, {"k": "z" * 32768})
    with pytest.raises(ValueError, match="empty"):
        caller.notify(0, PROCESS, "projN", "", 0, 1, "x")
    with pytest.raises(ValueError, match="empty"):
        caller.notify(0, PROCESS, "projN", "t", 0, 1, "")
    # the largest JSON accepted goes through
    ok = ["x" * 32764]                              # 32,768 bytes of JSON
    assert len(json.dumps(ok, separators=(",", ":"))) == 32768
    assert caller.launch_flow(0, PROCESS, "proj1", "echo", 1, 1, ok) > 0


def test_largest_params_round_trip(caller, flow_server):
    params = ["中" * 16000, "y" * 760]             # 32,767 bytes of JSON in CP936
    iid = launch(caller, "echo", params)
    assert settled(caller, iid, 5)
    assert flow_events(caller, iid, "resp")[0][4] == params


# ---- notifications ----------------------------------------------------------------------------


def test_notify_reaches_the_handler(caller, flow_server):
    n1 = caller.notify(0, PROCESS, "projN", "标题T", 3, 60.5, "文本 text")
    n2 = caller.notify(0, PROCESS, "projN", "T2", 0, 0, {"a": [1, "二"]})
    n3 = caller.notify(0, PROCESS, None, "T2", 7, 1, b"raw bytes")
    assert 0 < n1 < n2 < n3
    assert wait_for(lambda: len(flow_server.notes) >= 3, 5), flow_server.notes
    assert sorted(flow_server.notes, key=repr) == sorted([
        ("projN", "标题T", 3, 60.5, "文本 text"),
        ("projN", "T2", 0, 0.0, '{"a":[1,"二"]}'),
        ("", "T2", 7, 1.0, "raw bytes"),
    ], key=repr)
    # the filtered handler got only the one matching project and title
    assert flow_server.filtered == [("projN", "T2", 0, 0.0, '{"a":[1,"二"]}')]


# ---- the FlowServer itself --------------------------------------------------------------------


def test_flow_server_beside_the_ipc_client_and_stop(router, ipc_client):
    """A FlowServer is a second IPC connection of the process; stop() waits
    (bounded) for running handlers and refuses new invokes meanwhile."""
    from smartbus.ipc import Client
    from smartbus.ipsc import FlowServer
    c = ipc_client(20, router.ipc_path, connect=False)
    started = threading.Event()
    fs = FlowServer(process_index=2, ipc_path=router.ipc_path)

    @fs.flow("p", "wait")
    def wait(seconds):
        started.set()
        time.sleep(seconds)
        return ["done"]

    try:
        with fs:
            assert c.connected.wait(5) and fs.wait_connected(5)
            assert fs.connected and fs.unit_id == 0 and Client.get() is c
            assert router.stats()["clients"] == 2
            iid = c.launch_flow(0, 2, "p", "wait", 0, 5, [1.0])
            assert started.wait(5)
            t0 = time.monotonic()
            stopper = threading.Thread(target=fs.stop, kwargs={"timeout": 5})
            stopper.start()
            time.sleep(0.2)
            refused = c.launch_flow(0, 2, "p", "wait", 0, 5, [0])
            stopper.join(10)
            assert not stopper.is_alive()
            # when the running flow (1 s) returned, well before stop's 5 s timeout
            assert 0.5 <= time.monotonic() - t0 <= 4.0
        assert settled(c, iid) and settled(c, refused)
        # the running flow finished and answered before the connection closed
        assert [e[0] for e in flow_events(c, iid)] == ["ack", "resp"]
        assert flow_events(c, iid, "resp")[0][4] == ["done"]
        assert [(e[0], e[4]) for e in flow_events(c, refused)] == [("ack", -99), ("error", -99)]
        assert not fs.connected
        fs.stop()                                      # idempotent
        assert wait_for(lambda: router.stats()["clients"] == 1, 5)
    finally:
        fs.stop()


def test_stop_does_not_wait_forever(router, ipc_client):
    from smartbus.ipsc import FlowServer
    fs = FlowServer(process_index=3, ipc_path=router.ipc_path, max_workers=1)
    release = threading.Event()
    entered = threading.Event()

    @fs.notification()
    def stuck(*args):
        entered.set()
        release.wait(10)

    try:
        fs.start(timeout=5)
        c = ipc_client(21, router.ipc_path)
        c.notify(0, 3, "p", "t", 0, 1, "x")
        assert entered.wait(5)
        t0 = time.monotonic()
        fs.stop(timeout=0.3)
        assert time.monotonic() - t0 < 5.0           # not the handler's 10 s
        assert not fs.connected
    finally:
        release.set()
        fs.stop()


def test_flow_server_arguments(router):
    from smartbus.ipsc import FlowServer
    with pytest.raises(ValueError):
        FlowServer(process_index=256)
    with pytest.raises(ValueError):
        FlowServer(process_index=0, ipc_path="")
    fs = FlowServer(process_index=4, ipc_path=router.ipc_path)
    with pytest.raises(ValueError):
        fs.flow("p" * 32, "f")
    with pytest.raises(ValueError):
        fs.flow("p", "")
    with pytest.raises(TypeError):
        fs.add_flow("p", "f", "not callable")
    assert "process 4" in repr(fs)
    missing = FlowServer(5, router.ipc_path + ".missing")
    try:
        with pytest.raises(TimeoutError):
            missing.start(timeout=0.3)
    finally:
        missing.stop()


# ---- on the wire: the golden vectors -------------------------------------------------------------


def test_ipc_invoke_and_notify_equal_the_vectors(short_tmp, peers):
    """In a fresh process (notify ids start at 1, invoke ids made to start
    at 1 as the vendor's do), as the Hesong client: RemoteInvokeFlow mode 0
    and 1, SendNotify, and the ack and result it accepts."""
    path = os.path.join(short_tmp, "fake")
    flows = "ipc_remote_invoke_flow.json"
    with WireServer(path) as srv:
        p = start_ipc_peer(peers, path, client_id=20, client_type=3, wait=False,
                           user="user1", password="pwd1", info="addinfo1", first_invoke_id=1)
        conn = srv.accept()
        assert len(conn.recv_packet()) == 5961
        conn.send(bytes.fromhex(ipc_packet("ipc_registration_ack.json", "accept, full")["hex"]))
        assert p.call(op="wait_connected", timeout=5)["ok"]

        r = p.call(op="launch_flow", args=[0, 1, "proj1", "flow1", 0, 3.0, [1, "a"]])
        assert r == {"ok": True, "id": 1}
        assert conn.recv_packet().hex() == ipc_packet(flows, "mode 0")["canonical_hex"]
        r = p.call(op="launch_flow", args=[0, 2, "proj2", "flow2", 1, 0.5, []])
        assert r == {"ok": True, "id": 2}
        assert conn.recv_packet().hex() == ipc_packet(flows, "mode 1")["canonical_hex"]

        conn.send(bytes.fromhex(ipc_packet(flows, "flow ack accepted")["hex"]))
        conn.send(bytes.fromhex(ipc_packet(flows, "flow result accepted")["hex"]))
        resp = wait_for(lambda: p.events("flow_resp"), 5)
        assert [e[1:] for e in resp] == [["proj1", 1, ["r1", 2]]] and resp[0][0] is not None
        # invoke 2 got no ack: timed out after 1 s (0.5 s clamped), no head
        assert wait_for(lambda: len(p.events("flow_ack")) >= 2, 5)
        acks = p.events("flow_ack")
        assert [e[1:] for e in acks] == [["proj1", 1, 1, "ok"], ["proj2", 2, -25, ""]]
        assert [e[0] is not None for e in acks] == [True, False]

        r = p.call(op="notify", args=[0, 1, "proj1", "title1", 1, 5.0, "param1"])
        assert r == {"ok": True, "id": 1}
        assert conn.recv_packet().hex() == \
            ipc_packet("ipc_send_notify.json", "typical")["canonical_hex"]


def zero_after_nul(b, start, size):
    field = b[start:start + size]
    n = field.find(0)
    if n >= 0:
        b[start + n:start + size] = bytes(size - n)


def mask_net(hexstr):
    """A NET vector with its undefined bytes zeroed (flow_invoke.json,
    notify.json): reserved head bytes, padding, bytes after string
    terminators in fixed fields, the byte after the parameter terminator."""
    b = bytearray.fromhex(hexstr)
    h = head_of(b)
    b[10:12] = b"\0\0"
    end = 20 + h["datalen"]
    b[end:] = bytes(len(b) - end)
    q = 20
    if h["cmd"] == 11:
        zero_after_nul(b, q + 1, 32)
        zero_after_nul(b, q + 33, 32)
        n = int.from_bytes(b[q + 74:q + 78], "little")
        b[q + 113 + n] = 0
    elif h["cmd"] == 15:
        zero_after_nul(b, q + 1, 32)
        zero_after_nul(b, q + 42, 102)
        n = int.from_bytes(b[q + 144:q + 148], "little")
        b[q + 149 + n] = 0
    return bytes(b)


def test_net_invoke_and_notify_equal_the_vectors(peers):
    """As builds A/B (unit 20, client 5, type 11), in a fresh process
    (invoke ids made to start at 1, as the vendor's do)."""
    invoke = [v for v in load_vectors("flow_invoke.json")["vectors"]
              if v.get("build") == "sdk-x64-2015" and not v.get("summary_only")][0]
    notes = {v["case"]: v for v in load_vectors("notify.json")["vectors"]
             if v.get("build") == "sdk-x64-2015" and not v.get("summary_only")}
    with WireServer() as srv:
        p = start_net_peer(peers, srv, 20, client_id=5, client_type=11, wait=False,
                           first_invoke_id=1)
        conn = srv.accept()
        reg = conn.recv_packet()
        assert head_of(reg)["cmd"] == 1
        conn.send(register_ack(0))
        assert p.call(op="wait_connected", timeout=5)["ok"]

        f = invoke["fields"]
        r = p.call(op="launch_flow", args=[0, 2, f["project_id"], f["flow_id"], f["mode"], 3.0,
                                          json.loads(f["params"])])
        assert r == {"ok": True, "id": 1}
        assert conn.recv_packet() == mask_net(invoke["hex"])

        f = notes["notify1"]["fields"]
        r = p.call(op="notify", args=[0, 2, f["project_id"], f["title"], f["mode"],
                                     f["expires"] / 1000, f["param"]])
        assert r == {"ok": True, "id": 1}
        assert conn.recv_packet() == mask_net(notes["notify1"]["hex"])

        f = notes["notify2_null_project"]["fields"]
        r = p.call(op="notify", args=[15, 7, None, f["title"], f["mode"], 0, f["param"]])
        assert r == {"ok": True, "id": 2}
        assert conn.recv_packet() == mask_net(notes["notify2_null_project"]["hex"])

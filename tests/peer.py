"""A smartbus client in its own process, driven by the tests.

The NET library keeps one unit id per process, so tests that need several
units run each in a peer process.  The peer reads one JSON command per line
on stdin and answers one JSON line on stdout (``serve``, shared with
tests/hesong_peer.py):

    {"op": "init", "kind": "net", "unit": 16, "port": P, "client_id": 1, "client_type": 11}
    {"op": "init", "kind": "ipc", "ipc_path": "...", "client_id": 5, "client_type": 3}
          (either kind: "first_invoke_id": 1 makes invoke ids count from 1, as the
          vendor's do; "slave_port": P adds a NET slave link)
    {"op": "wait_connected", "timeout": 5}
    {"op": "send", "dst": [unit, client, type], "count": N, "max_size": 65536}
    {"op": "expect", "count": N, "timeout": 30}      # checks contents and order
    {"op": "send_raw", "cmd": 1, "cmd_type": 3, "dst": [unit, client, type], "data": "hex"}
    {"op": "fill", "dst": [unit, client, type], "size": S, "limit": N}
    {"op": "ping", "dst": [unit, client, type], "data": "hex"}
    {"op": "received", "count": N, "timeout": 5}      # the data messages so far
                                                      # (after waiting for N, if given)
    {"op": "seqs"}              # the numbers (u32, first 4 bytes) of the data so far
    {"op": "events"}                                  # connect/global/flow_... so far
    {"op": "launch_flow", "args": [unit, process, project, flow, mode, timeout, params]}
    {"op": "notify", "args": [unit, process, project, title, mode, expires, txt]}
    {"op": "unit"}
    {"op": "quit"}

Events are lists [kind, *arguments] (helpers.Recording); a head argument
becomes [cmd, cmd_type, src unit, src client, data length], or null.
Payload i of a "send" run is ``payload(i, max_size)``: its size and
contents depend on i, so the receiver can check both and the order.
"""

import json
import sys
import time

from helpers import recording

PATTERN = bytes(range(256)) * 520


def payload_size(i, max_size):
    if max_size <= 0:
        return 0
    # spreads sizes over 0..max_size, with the edges included
    if i % 97 == 0:
        return max_size
    return (i * 7919) % (max_size + 1)


def payload(i, max_size):
    n = payload_size(i, max_size)
    off = (i * 31) % 251
    return PATTERN[off:off + n]


def head_list(head):
    if head is None:
        return None
    return [head.cmd, head.cmd_type, head.src_unit_id, head.src_unit_client_id,
            head.data_length]


class Peer:
    def __init__(self):
        self.client = None

    def init(self, cmd):
        if "first_invoke_id" in cmd:
            from smartbus import _native
            _native._invoke_ids_start_at(cmd["first_invoke_id"])
        if cmd["kind"] == "net":
            from smartbus.net import Client
            Client.initialize(cmd["unit"])
            slave_port = cmd.get("slave_port")
            self.client = recording(Client).create(
                cmd.get("client_id", 1), cmd.get("client_type", 11), "127.0.0.1", cmd["port"],
                "127.0.0.1" if slave_port else None, slave_port,
                user=cmd.get("user"), password=cmd.get("password"), info=cmd.get("info"))
        else:
            from smartbus.ipc import Client
            self.client = recording(Client).create(
                cmd.get("client_id", 1), cmd.get("client_type", 3), user=cmd.get("user"),
                password=cmd.get("password"), info=cmd.get("info"), ipc_path=cmd.get("ipc_path"))
        self.client.activate()
        return {"ok": True}

    def send(self, cmd):
        """``count`` payloads, retrying those the full send queue refuses."""
        from smartbus.errors import SMARTBUS_ERR_BUFF_FULL, SmartBusError
        unit, client, ctype = cmd["dst"]
        max_size = cmd.get("max_size", 64)
        full = 0
        for i in range(cmd["count"]):
            data = payload(i, max_size)
            while True:
                try:
                    self.client.send_data(cmd.get("cmd", 5), cmd.get("cmd_type", 3), unit, client,
                                          ctype, data)
                    break
                except SmartBusError as exc:
                    if exc.code != SMARTBUS_ERR_BUFF_FULL:
                        return {"ok": False, "error": str(exc), "sent": i}
                    full += 1
                    time.sleep(0.001)       # the I/O thread empties the queue
        return {"ok": True, "sent": cmd["count"], "queue_full_retries": full}

    def expect(self, cmd):
        """Waits for ``count`` messages and checks them against a "send" run."""
        count, max_size = cmd["count"], cmd.get("max_size", 64)
        got = self.client.log.wait("data", count, timeout=cmd.get("timeout", 30))
        errors = []
        for i, (head, data) in enumerate(got[:count]):
            want = payload(i, max_size)
            if data != want or head.data_length != len(want):
                errors.append("message %d: %d bytes (head says %d), expected %d%s"
                              % (i, len(data), head.data_length, len(want),
                                 "" if len(data) != len(want) else ", contents differ"))
                if len(errors) > 10:
                    break
        return {"ok": len(got) >= count and not errors, "received": len(got), "errors": errors,
                "first": [head_list(h) for h, _ in got[:1]]}

    def fill(self, cmd):
        """Sends ``size``-byte messages until one is refused (at most ``limit``)."""
        from smartbus.errors import SmartBusError
        unit, client, ctype = cmd["dst"]
        data = bytes(cmd["size"])
        code, sent = 0, 0
        for sent in range(cmd["limit"]):
            try:
                self.client.send_data(1, 3, unit, client, ctype, data)
            except SmartBusError as exc:
                code = exc.code
                break
        st = self.client.stats()
        return {"ok": True, "sent": sent, "error_code": code,
                "queued_bytes": st["queued_bytes"], "queued_msgs": st["queued_msgs"]}

    def handle(self, cmd):
        op = cmd["op"]
        if op == "init":
            return self.init(cmd)
        if op == "wait_connected":
            return {"ok": self.client.connected.wait(cmd.get("timeout", 5))}
        if op in ("send", "expect", "fill"):
            return getattr(self, op)(cmd)
        if op == "send_raw":
            unit, client, ctype = cmd["dst"]
            self.client.send_data(cmd["cmd"], cmd["cmd_type"], unit, client, ctype,
                                  bytes.fromhex(cmd.get("data", "")))
            return {"ok": True}
        if op == "ping":
            unit, client, ctype = cmd["dst"]
            self.client.ping(unit, client, ctype, bytes.fromhex(cmd.get("data", "")))
            return {"ok": True}
        if op == "launch_flow":
            return {"ok": True, "id": self.client.launch_flow(*cmd["args"])}
        if op == "notify":
            return {"ok": True, "id": self.client.notify(*cmd["args"])}
        if op == "received":
            got = self.client.log.wait("data", cmd.get("count", 0), timeout=cmd.get("timeout", 0))
            return {"ok": True, "data": [head_list(h) + [d.hex()] for h, d in got]}
        if op == "seqs":
            return {"ok": True, "seqs": [int.from_bytes(d[:4], "little")
                                         for _, d in self.client.log.of("data")]}
        if op == "events":
            return {"ok": True, "events": [
                [kind] + [head_list(a) if hasattr(a, "cmd_type") else a for a in args]
                for _, kind, args in self.client.log.timed() if kind != "data"]}
        if op == "unit":
            return {"ok": True, "unit_id": self.client.unit_id}
        if op == "quit":
            if self.client is not None:
                self.client.dispose()
            return {"ok": True}
        return {"ok": False, "error": "unknown op %r" % op}


def serve(handle, out):
    """The loop of a peer script: each JSON command line on stdin goes to
    ``handle``, whose answer (an exception becomes {"ok": false, "error"})
    is written as one JSON line to ``out``; stops after "quit" or at the
    end of stdin."""
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            reply = handle(cmd)
        except Exception as exc:              # reported to the test, which fails
            reply = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if cmd["op"] == "quit":
            break


if __name__ == "__main__":
    serve(Peer().handle, sys.stdout)

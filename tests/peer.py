"""A SmartBus client in its own process, driven by the tests.

The NET library keeps one unit id per process, so tests that need several
units run each in a peer process.  The peer reads one JSON command per line
on stdin and answers one JSON line on stdout:

    {"op": "init", "kind": "net", "unit": 16, "port": P, "client_id": 1, "client_type": 11}
    {"op": "init", "kind": "ipc", "ipc_path": "...", "client_id": 5, "client_type": 3}
    {"op": "wait_connected", "timeout": 5}
    {"op": "send", "dst": [unit, client, type], "count": N, "max_size": 65536}
    {"op": "expect", "count": N, "timeout": 30}      # checks contents and order
    {"op": "send_raw", "cmd": 1, "cmd_type": 3, "dst": [unit, client, type], "data": "hex"}
    {"op": "ping", "dst": [unit, client, type], "data": "hex"}
    {"op": "events"}                                  # connect/global/flow_... seen so far
    {"op": "launch_flow", "args": [unit, process, project, flow, mode, timeout, params]}
    {"op": "notify", "args": [unit, process, project, title, mode, expires, txt]}
    {"op": "quit"}

Payload i of a run is ``payload(i, max_size)``: its size and contents depend
on i, so the receiver can check both and the order.
"""

import json
import sys
import threading
import time

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


class Peer:
    def __init__(self):
        self.client = None
        self.lock = threading.Lock()
        self.events = []
        self.data = []                 # (cmd, cmd_type, src unit, src client, data)
        self.connected = threading.Event()
        self.cond = threading.Condition(self.lock)

    def record(self, *ev):
        with self.lock:
            self.events.append(list(ev))

    def make_client(self, cmd):
        peer = self
        kind = cmd["kind"]
        if kind == "net":
            from smartbus.net import Client
            Client.initialize(cmd["unit"], lambda *a: peer.record("global", *a))
        else:
            from smartbus.ipc import Client

        class PeerClient(Client):
            def on_connect(self):
                peer.record("connect", self.access_unit_id)
                peer.connected.set()

            def on_connect_fail(self, code):
                peer.record("connect_fail", code)

            def on_disconnect(self):
                peer.record("disconnect")
                peer.connected.clear()

            def on_data(self, head, data):
                with peer.cond:
                    peer.data.append((head.cmd, head.cmd_type, head.src_unit_id,
                                      head.src_unit_client_id, head.data_length, data))
                    peer.cond.notify_all()

            def on_global_connect_state_changed(self, *args):
                if kind == "ipc":
                    peer.record("global", *args)

            def on_flow_ack(self, head, project_id, invoke_id, code, msg):
                peer.record("flow_ack", project_id, invoke_id, code, msg, head is not None)

            def on_flow_resp(self, head, project_id, invoke_id, params):
                peer.record("flow_resp", project_id, invoke_id, params, head is not None)

            def on_flow_timeout(self, head, project_id, invoke_id):
                peer.record("flow_timeout", project_id, invoke_id, head is not None)

            def on_flow_error(self, head, project_id, invoke_id, code):
                peer.record("flow_error", project_id, invoke_id, code, head is not None)

        if kind == "net":
            c = PeerClient.create(cmd.get("client_id", 1), cmd.get("client_type", 11),
                                  "127.0.0.1", cmd["port"], user=cmd.get("user"),
                                  password=cmd.get("password"), info=cmd.get("info"))
        else:
            c = PeerClient.create(cmd.get("client_id", 1), cmd.get("client_type", 3),
                                  user=cmd.get("user"), password=cmd.get("password"),
                                  info=cmd.get("info"), ipc_path=cmd.get("ipc_path"))
        c.activate()
        self.client = c
        return {"ok": True}

    def send(self, cmd):
        from smartbus.errors import SmartBusError
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
                    if exc.code != -7:          # queue full: wait for the I/O thread
                        return {"ok": False, "error": str(exc), "sent": i}
                    full += 1
                    time.sleep(0.001)
        return {"ok": True, "sent": cmd["count"], "queue_full_retries": full}

    def expect(self, cmd):
        count, max_size = cmd["count"], cmd.get("max_size", 64)
        deadline = time.monotonic() + cmd.get("timeout", 30)
        with self.cond:
            while len(self.data) < count and time.monotonic() < deadline:
                self.cond.wait(0.2)
            got = list(self.data)
            del self.data[:count]
        errors = []
        for i, (c, ct, su, sc, dl, data) in enumerate(got[:count]):
            want = payload(i, max_size)
            if data != want or dl != len(want):
                errors.append("message %d: %d bytes (head says %d), expected %d%s"
                              % (i, len(data), dl, len(want),
                                 "" if len(data) != len(want) else ", contents differ"))
                if len(errors) > 10:
                    break
        return {"ok": len(got) >= count and not errors, "received": len(got), "errors": errors,
                "first": [list(x[:5]) for x in got[:1]]}

    def handle(self, cmd):
        op = cmd["op"]
        if op == "init":
            return self.make_client(cmd)
        if op == "wait_connected":
            return {"ok": self.connected.wait(cmd.get("timeout", 5))}
        if op == "send":
            return self.send(cmd)
        if op == "expect":
            return self.expect(cmd)
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
            with self.lock:
                return {"ok": True, "data": [[c, ct, su, sc, dl, d.hex()]
                                             for c, ct, su, sc, dl, d in self.data]}
        if op == "events":
            with self.lock:
                return {"ok": True, "events": list(self.events)}
        if op == "unit":
            return {"ok": True, "unit_id": self.client.unit_id}
        if op == "quit":
            if self.client is not None:
                self.client.dispose()
            return {"ok": True}
        return {"ok": False, "error": "unknown op %r" % op}


def main():
    peer = Peer()
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            reply = peer.handle(cmd)
        except Exception as exc:              # reported to the test, which fails
            reply = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if cmd["op"] == "quit":
            break


if __name__ == "__main__":
    main()

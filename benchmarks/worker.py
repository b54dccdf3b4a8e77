"""One process of the benchmarks (started by benchmarks/run.py).

    python benchmarks/worker.py ROLE 'JSON-ARGS'

Reads one JSON command per line on stdin, answers one JSON line prefixed
with "@@ " on stdout (the vendor library may print other lines).  Roles:

  router    the bundled router (smartbus.server.Server) in this process
  sender    a smartbus.net client that sends / pings / floods
  pyrecv    a smartbus.net client counting in on_data (optionally with a
            busy Python thread in the same process)
  vendor    the vendor's ctypes package (hesong-ipsc-busnetcli) sending
  zmqpush / zmqpull    the pyzmq reference
  noop      the do-nothing Cython method (module compiled by run.py)

Every sender does the same thing: a warm-up (``calibrate``), then exactly
``n`` calls of the same Python loop; a refused send (-7, queue full) is
retried after a short sleep, so the receiver gets exactly ``n`` messages.
Times are time.monotonic() (CLOCK_MONOTONIC, shared by all processes).
"""

import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CMD, CMD_TYPE = 1, 3
FULL_SLEEP = 0.0002          # back-off after a -7 (queue full)


def reply(obj):
    sys.stdout.write("@@ " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def rss_kb(pid="self"):
    """(VmRSS, VmHWM) of a process in KiB."""
    out = {}
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


# ---- the send loops (identical shape for every package) -----------------------

def loop_send_data(send, dst, data, n, error_cls):
    """n calls of send(cmd, cmd_type, unit, client, type, data); -7 is retried."""
    unit, client, ctype = dst
    full = 0
    sleep = time.sleep
    t0 = time.monotonic()
    for _ in range(n):
        try:
            send(CMD, CMD_TYPE, unit, client, ctype, data)
        except error_cls as exc:
            if getattr(exc, "code", -7) != -7:
                raise
            full += 1
            while True:
                sleep(FULL_SLEEP)
                try:
                    send(CMD, CMD_TYPE, unit, client, ctype, data)
                    break
                except error_cls:
                    full += 1
    t1 = time.monotonic()
    return {"t0": t0, "t1": t1, "n": n, "full": full}


def loop_send_many(send_many, dst, data, n, batch, error_cls):
    """n messages in batches through send_many (retrying what was refused)."""
    unit, client, ctype = dst
    full = 0
    chunk = [data] * batch
    sleep = time.sleep
    t0 = time.monotonic()
    left = n
    while left > 0:
        items = chunk if left >= batch else chunk[:left]
        try:
            done = send_many(CMD, CMD_TYPE, unit, client, ctype, items)
        except error_cls as exc:
            if exc.code != -7:
                raise
            done = 0
        left -= done
        if done < len(items):
            full += 1
            sleep(FULL_SLEEP)
    t1 = time.monotonic()
    return {"t0": t0, "t1": t1, "n": n, "full": full}


def calibrate(run, seconds=0.3, step=20000):
    """Runs run(step) until `seconds` passed; returns (messages, calls/s)."""
    total = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        run(step)
        total += step
    return total, total / (time.monotonic() - t0)


# ---- roles --------------------------------------------------------------------

class RouterRole:
    def __init__(self, args):
        from smartbus.server import Server, raise_open_files_limit
        # the scale cases: thousands of connections, a descriptor each
        # (python -m smartbus.server raises its limit the same way)
        extra = {}
        nofile = None
        if "max_connections" in args:
            extra["max_connections"] = args["max_connections"]
            nofile = raise_open_files_limit()[1]
        self.srv = Server(host="127.0.0.1", port=0, unit_id=0,
                          max_out_bytes=args.get("max_out_bytes", 0),
                          stall_timeout=args.get("stall_timeout", 10.0), **extra)
        self.srv.start()
        reply({"ok": True, "port": self.srv.port, "pid": os.getpid(), "nofile": nofile})

    def handle(self, cmd):
        if cmd["op"] == "stats":
            return dict(self.srv.stats(), ok=True)
        if cmd["op"] == "cpu":
            # user + system CPU seconds of this process (the router's loop
            # thread; the others sleep)
            t = os.times()
            return {"ok": True, "cpu_s": t.user + t.system}
        return None

    def quit(self):
        self.srv.stop()


def _net_client_class(base, on_data=None):
    class C(base):
        def on_connect(self):
            self.connected_event.set()
    if on_data is not None:
        C.on_data = on_data
    return C


def _connect(cls, args):
    """Creates and activates a client of class ``cls`` (type 11), waits for
    its registration and reports it to the runner; returns the client."""
    cls.connected_event = threading.Event()
    client = cls.create(args.get("client_id", 1), 11, "127.0.0.1", args["port"])
    client.activate()
    reply({"ok": cls.connected_event.wait(10), "pid": os.getpid()})
    return client


class SenderRole:
    """smartbus.net client: send loops, ping-pong, flood."""

    def __init__(self, args):
        from smartbus.net import Client
        from smartbus.errors import SmartBusError
        self.error_cls = SmartBusError
        Client.initialize(args["unit"])
        self.pings = None
        role = self

        def on_data(self, head, data):
            p = role.pings
            if p is not None and head.cmd == 8:
                p.append(time.perf_counter_ns())
                if len(p) < role.ping_n:
                    role.ping_t0.append(time.perf_counter_ns())
                    self.ping(*role.ping_dst, role.ping_data)
                else:
                    role.ping_done.set()

        self.client = _connect(_net_client_class(Client, on_data), args)

    def handle(self, cmd):
        op = cmd["op"]
        c = self.client
        if op == "calibrate":
            data = b"x" * cmd["size"]
            dst = cmd["dst"]
            if cmd.get("batch"):
                b = cmd["batch"]
                n, rate = calibrate(lambda k: loop_send_many(c.send_many, dst, data, k, b,
                                                             self.error_cls))
            else:
                n, rate = calibrate(lambda k: loop_send_data(c.send_data, dst, data, k,
                                                             self.error_cls))
            return {"ok": True, "n": n, "rate": rate}
        if op == "send":
            data = b"x" * cmd["size"]
            if cmd.get("batch"):
                r = loop_send_many(c.send_many, cmd["dst"], data, cmd["n"], cmd["batch"],
                                   self.error_cls)
            else:
                r = loop_send_data(c.send_data, cmd["dst"], data, cmd["n"], self.error_cls)
            r["ok"] = True
            return r
        if op == "flood":
            # n calls, no retry: how many were queued, how many refused
            data = b"x" * cmd["size"]
            unit, client, ctype = cmd["dst"]
            send = c.send_data
            err = self.error_cls
            refused = other = 0
            codes = {}
            t0 = time.monotonic()
            for _ in range(cmd["n"]):
                try:
                    send(CMD, CMD_TYPE, unit, client, ctype, data)
                except err as exc:
                    if exc.code == -7:
                        refused += 1
                    else:
                        other += 1
                        codes[exc.code] = codes.get(exc.code, 0) + 1
            t1 = time.monotonic()
            rss, hwm = rss_kb()
            return {"ok": True, "queued": cmd["n"] - refused - other, "refused_7": refused,
                    "other_errors": codes, "t0": t0, "t1": t1, "rss_kb": rss, "hwm_kb": hwm,
                    "stats": c.stats()}
        if op == "ping":
            self.ping_n = cmd["n"]
            self.ping_dst = tuple(cmd["dst"])
            self.ping_data = b"p" * cmd["size"]
            self.ping_done = threading.Event()
            self.ping_t0 = [time.perf_counter_ns()]
            self.pings = []
            c.ping(*self.ping_dst, self.ping_data)
            ok = self.ping_done.wait(cmd.get("timeout", 60))
            t0s, t1s = self.ping_t0, self.pings
            self.pings = None
            rtt = sorted((b - a) / 1000.0 for a, b in zip(t0s, t1s))
            warm = min(len(rtt), cmd.get("warmup", 0))
            rtt = sorted(((b - a) / 1000.0 for a, b in zip(t0s[warm:], t1s[warm:])))
            if not rtt:
                return {"ok": False, "error": "no ping answers"}
            return {"ok": ok, "n": len(rtt), "p50_us": rtt[len(rtt) // 2],
                    "p99_us": rtt[int(len(rtt) * 0.99)], "mean_us": sum(rtt) / len(rtt)}
        if op == "stats":
            rss, hwm = rss_kb()
            return {"ok": True, "stats": c.stats(), "rss_kb": rss, "hwm_kb": hwm}
        return None

    def quit(self):
        self.client.dispose()


class PyRecvRole:
    """smartbus.net client counting in on_data (or, with "batch", in
    on_data_batch); `arm` sets the target count."""

    def __init__(self, args):
        from smartbus.net import Client
        Client.initialize(args["unit"])
        self.target = 1 << 62
        self.count = 0
        self.nbytes = 0
        self.t_last = 0.0
        self.done = threading.Event()
        role = self
        monotonic = time.monotonic

        def on_data(self, head, data):
            n = role.count + 1
            role.count = n
            if n == role.target:
                role.t_last = monotonic()
                role.done.set()

        def on_data_batch(self, batch):
            n = role.count + len(batch)
            role.count = n
            if n >= role.target and not role.done.is_set():
                role.t_last = monotonic()
                role.done.set()

        cls = _net_client_class(Client, on_data)
        if args.get("batch"):
            cls.on_data_batch = on_data_batch
        cls.connected_event = threading.Event()
        self.client = cls.create(args.get("client_id", 1), 11, "127.0.0.1", args["port"])
        self.client.activate()
        self.busy = None
        self.busy_loops = 0
        ok = cls.connected_event.wait(10)
        reply({"ok": ok, "pid": os.getpid()})

    def _busy(self):
        n = 0
        stop = self.busy_stop
        while not stop.is_set():
            for _ in range(1000):
                n += 1
        self.busy_loops = n

    def handle(self, cmd):
        op = cmd["op"]
        if op == "arm":
            self.count = 0
            self.done.clear()
            self.target = cmd["n"]
            return {"ok": True}
        if op == "wait":
            ok = self.done.wait(cmd.get("timeout", 60))
            return {"ok": ok, "count": self.count, "last": self.t_last}
        if op == "busy":
            if cmd["on"] and self.busy is None:
                self.busy_stop = threading.Event()
                self.busy = threading.Thread(target=self._busy, daemon=True)
                self.busy.start()
            elif not cmd["on"] and self.busy is not None:
                self.busy_stop.set()
                self.busy.join()
                self.busy = None
            return {"ok": True, "busy_loops": self.busy_loops}
        return None

    def quit(self):
        self.client.dispose()


class VendorRole:
    """The vendor's ctypes package sending (its own process: global state)."""

    def __init__(self, args):
        import logging
        logging.disable(logging.CRITICAL)        # the package logs every call at debug
        import importlib.util
        if importlib.util.find_spec("pkg_resources") is None:   # the vendor package imports it
            raise SystemExit("the vendor package needs pkg_resources: "
                             "pip install 'setuptools>=77,<81'")
        from hesong.ipsc.busnetcli.client import Client
        from hesong.ipsc.busnetcli.errors import SmartBusError
        self.error_cls = SmartBusError
        Client.initialize(args["unit"])
        self.client = _connect(_net_client_class(Client), args)

    def handle(self, cmd):
        op = cmd["op"]
        c = self.client
        if op == "calibrate":
            data = b"x" * cmd["size"]
            n, rate = calibrate(lambda k: loop_send_data(c.send_data, cmd["dst"], data, k,
                                                         self.error_cls), step=500)
            return {"ok": True, "n": n, "rate": rate}
        if op == "send":
            data = b"x" * cmd["size"]
            r = loop_send_data(c.send_data, cmd["dst"], data, cmd["n"], self.error_cls)
            r["ok"] = True
            return r
        return None

    def quit(self):
        pass                          # the vendor library cannot release a client


class ZmqPushRole:
    def __init__(self, args):
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.connect("tcp://127.0.0.1:%d" % args["port"])
        reply({"ok": True, "pid": os.getpid(), "zmq": zmq.__version__})

    def _loop(self, data, n):
        send = self.sock.send
        t0 = time.monotonic()
        for _ in range(n):
            send(data)
        return {"t0": t0, "t1": time.monotonic(), "n": n, "full": 0}

    def handle(self, cmd):
        op = cmd["op"]
        data = b"x" * cmd.get("size", 0)
        if op == "calibrate":
            n, rate = calibrate(lambda k: self._loop(data, k))
            return {"ok": True, "n": n, "rate": rate}
        if op == "send":
            r = self._loop(data, cmd["n"])
            r["ok"] = True
            return r
        return None

    def quit(self):
        self.sock.close(linger=1000)
        self.ctx.term()


class ZmqPullRole:
    def __init__(self, args):
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.thread = None
        reply({"ok": True, "port": self.port, "pid": os.getpid()})

    def _recv(self, n):
        recv = self.sock.recv
        for _ in range(n):
            recv()
        self.t_last = time.monotonic()

    def handle(self, cmd):
        op = cmd["op"]
        if op == "arm":
            self.t_last = 0.0
            self.thread = threading.Thread(target=self._recv, args=(cmd["n"],), daemon=True)
            self.thread.start()
            return {"ok": True}
        if op == "wait":
            self.thread.join(cmd.get("timeout", 60))
            ok = not self.thread.is_alive()
            return {"ok": ok, "count": None, "last": self.t_last}
        return None

    def quit(self):
        self.sock.close(linger=0)
        self.ctx.term()


class NoopRole:
    """The do-nothing Cython method with send_data's signature."""

    def __init__(self, args):
        sys.path.insert(0, args["path"])
        import sbnoop
        self.obj = sbnoop.Noop()
        reply({"ok": True, "pid": os.getpid()})

    def handle(self, cmd):
        op = cmd["op"]
        data = b"x" * cmd["size"]
        if op == "calibrate":
            n, rate = calibrate(lambda k: loop_send_data(self.obj.send_data, cmd["dst"], data,
                                                         k, RuntimeError))
            return {"ok": True, "n": n, "rate": rate}
        if op == "send":
            r = loop_send_data(self.obj.send_data, cmd["dst"], data, cmd["n"], RuntimeError)
            r["ok"] = True
            return r
        return None

    def quit(self):
        pass


ROLES = {"router": RouterRole, "sender": SenderRole, "pyrecv": PyRecvRole,
         "vendor": VendorRole, "zmqpush": ZmqPushRole, "zmqpull": ZmqPullRole,
         "noop": NoopRole}


def main():
    role = ROLES[sys.argv[1]](json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            role.quit()
            reply({"ok": True})
            break
        if cmd["op"] == "rss":
            rss, hwm = rss_kb()
            reply({"ok": True, "rss_kb": rss, "hwm_kb": hwm})
            continue
        try:
            r = role.handle(cmd)
            if r is None:
                r = {"ok": False, "error": "unknown op %r" % cmd["op"]}
        except Exception as exc:
            r = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        reply(r)
    sys.stdout.flush()
    os._exit(0)          # no interpreter teardown races with library threads


if __name__ == "__main__":
    main()

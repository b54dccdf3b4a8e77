"""The sending process of the thread-scaling benchmark (started by
benchmarks/run.py, section "thread scaling"): THREADS application threads
send_data to one destination, each on a NET client of its own, or all on
one shared client.

    python benchmarks/threads.py threads 'JSON-ARGS'   (unit, port, threads, shared)

A role run by benchmarks/worker.py's command loop (one JSON command per
line, answers prefixed with "@@ "): ``send`` makes ``n`` calls in all, split
between the threads, each thread running worker.py's send loop
(a -7, queue full, is retried), all started together; t0 is the first
thread's start, t1 the last one's end.  ``cpu`` answers the CPU time
this process (its sending threads and its I/O thread) used per second of
the last ``send``: above 1, threads ran in parallel.  The first answer says
whether the GIL is enabled (a free-threaded build runs these threads in
parallel).
"""

import os
import sys
import threading
import time

import worker          # puts the tree on sys.path (ROOT)
from worker import loop_send_data, reply


class ThreadsRole:
    def __init__(self, args):
        from smartbus.errors import SmartBusError
        from smartbus.net import Client

        class Sender(Client):
            def on_connect(self):
                self.connected_event.set()

        self.error_cls = SmartBusError
        self.threads = args["threads"]
        Client.initialize(args["unit"])
        self.clients = []
        for i in range(1 if args["shared"] else self.threads):
            c = Sender.create(i + 1, 11, "127.0.0.1", args["port"])
            c.connected_event = threading.Event()
            c.activate()
            self.clients.append(c)
        self.cpu_per_s = None
        ok = all(c.connected_event.wait(10) for c in self.clients)
        gil = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
        reply({"ok": ok, "pid": os.getpid(), "gil": gil})

    def handle(self, cmd):
        if cmd["op"] == "send":
            return self.send(cmd["n"], cmd["size"], cmd["dst"])
        if cmd["op"] == "cpu":
            return {"ok": True, "cpu_per_s": self.cpu_per_s}
        return None

    def quit(self):
        for c in self.clients:
            c.dispose()

    def send(self, n, size, dst):
        data = b"x" * size
        counts = [n // self.threads + (i < n % self.threads) for i in range(self.threads)]
        results = [None] * self.threads
        start = threading.Barrier(self.threads)

        def run(i):
            client = self.clients[i % len(self.clients)]
            start.wait()
            results[i] = loop_send_data(client.send_data, dst, data, counts[i],
                                        self.error_cls)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(self.threads)]
        cpu0 = time.process_time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu = time.process_time() - cpu0
        wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
        self.cpu_per_s = cpu / max(wall, 1e-6)
        return {"ok": True, "t0": min(r["t0"] for r in results),
                "t1": max(r["t1"] for r in results), "n": n,
                "full": sum(r["full"] for r in results)}


if __name__ == "__main__":
    # worker.py's command loop, with this role added to its roles
    worker.ROLES["threads"] = ThreadsRole
    worker.main()

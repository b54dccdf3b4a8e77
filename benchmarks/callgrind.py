"""Instructions per message, counted by callgrind: the noise-free figure
behind the send and end-to-end rates of run.py (the machine may be busy;
instruction counts do not care).

    python benchmarks/callgrind.py send|e2e|e2e_batch|ping [--n N]

Each probe runs twice under ``valgrind --tool=callgrind`` in one process
with a router on a thread (the whole process is counted: the Python loop,
the binding, the SDK's I/O and callback threads, the router): with 0
messages and with N; the difference divided by N is printed.
  send       N x send_data(64 B) from a NET client (to no receiver)
  e2e        N x 64 B from a NET client to an IPC client's on_data
  e2e_batch  the same to an IPC client that defines on_data_batch
  ping       N round trips: NET client -> IPC client -> answer -> on_data
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time


def probe(kind, n):
    """The measured program (run under valgrind by main)."""
    from smartbus.ipc import Client as Ipc
    from smartbus.net import Client
    from smartbus.server import Server

    path = os.path.join(tempfile.mkdtemp(), "ipc")
    srv = Server(port=0, unit_id=3, ipc_path=path).start()
    Client.initialize(20)
    up = threading.Event()
    done = threading.Event()
    got = [0]

    class Sender(Client):
        def on_connect(self):
            up.set()

        def on_data(self, head, data):          # ping answers
            got[0] += 1
            if got[0] < n:
                self.ping(3, 7, 3, data)
            else:
                done.set()

    class Receiver(Ipc):
        def on_connect(self):
            up.set()

        def on_data(self, head, data):
            if kind == "ping":               # its SDK answers: the sender counts
                return
            got[0] += 1
            if got[0] == n:
                done.set()

    class BatchReceiver(Receiver):
        def on_data_batch(self, batch):
            got[0] += len(batch)
            if got[0] == n:
                done.set()

    receiver = None
    if kind != "send":
        receiver = (BatchReceiver if kind == "e2e_batch" else Receiver).create(
            7, 3, ipc_path=path)
        receiver.activate()
        assert up.wait(60)
        up.clear()
    c = Sender.create(1, 11, "127.0.0.1", srv.port)
    c.activate()
    assert up.wait(60)
    data = b"x" * 64
    if kind == "ping":
        if n:
            c.ping(3, 7, 3, data)
    else:
        dst = (1, 3, 3, 7, 3) if receiver is not None else (1, 3, 21, 1, 11)
        send = c.send_data
        i = 0
        while i < n:
            try:
                send(*dst, data)
                i += 1
            except Exception:               # -7: the queue is full, let it drain
                time.sleep(0.001)
    assert kind == "send" or n == 0 or done.wait(600)
    c.dispose()
    if receiver is not None:
        receiver.dispose()
    Client.release()
    srv.stop()


def count(kind, n):
    """Instructions of one probe run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(tmp, "cg"),
             sys.executable, __file__, "--probe", kind, "--n", str(n)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True).stdout
    m = re.search(r"Collected : (\d+)", out)
    if not m:
        raise RuntimeError("no callgrind total in:\n" + out[-2000:])
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=("send", "e2e", "e2e_batch", "ping"))
    ap.add_argument("--n", type=int, default=None,
                    help="messages (default 100,000; 50,000 end to end; 2,000 pings)")
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    n = args.n if args.n is not None else {"send": 100000, "ping": 2000}.get(args.kind, 50000)
    if args.probe:
        probe(args.kind, n)
        return 0
    base, full = count(args.kind, 0), count(args.kind, n)
    print("%s: %d messages: %d - %d instructions = %.0f per message"
          % (args.kind, n, full, base, (full - base) / n))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Instructions per message, counted by callgrind: the noise-free figure
behind the send and end-to-end rates of run.py (the machine may be busy;
instruction counts do not care).

    python benchmarks/callgrind.py send|noop|e2e|e2e_batch|ping [--n N]

Each probe runs twice under ``valgrind --tool=callgrind`` in one process
with a router on a thread (the whole process is counted: the Python loop,
the binding, the SDK's I/O and callback threads, the router): with 0
messages and with N; the difference divided by N is printed, for the
whole process and for its main thread (the one running the loop).
  send       N x send_data(64 B) from a NET client (to no receiver)
  noop       the same loop over run.py's do-nothing Cython method (its
             reference: the main thread's figures compare directly)
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

from worker import loop_send_data      # run.py's sender loop, measured here as it runs there


NOOP_DIR_ENV = "SMARTBUS_NOOP_DIR"      # where main() built the do-nothing module


def probe(kind, n):
    """The measured program (run under valgrind by main)."""
    if kind == "noop":
        sys.path.insert(0, os.environ[NOOP_DIR_ENV])
        import sbnoop
        loop_send_data(sbnoop.Noop().send_data, (21, 1, 11), b"x" * 64, n, RuntimeError)
        return
    from smartbus.errors import SmartBusError
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
        unit, client, ctype = (3, 7, 3) if receiver is not None else (21, 1, 11)
        loop_send_data(c.send_data, (unit, client, ctype), data, n, SmartBusError)
    assert kind == "send" or n == 0 or done.wait(600)
    c.dispose()
    if receiver is not None:
        receiver.dispose()
    Client.release()
    srv.stop()


def count(kind, n, env):
    """Instructions of one probe run under callgrind: (whole process, main
    thread)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             "--callgrind-out-file=" + os.path.join(tmp, "cg"),
             sys.executable, __file__, "--probe", kind, "--n", str(n)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True,
            env=env).stdout
        m = re.search(r"Collected : (\d+)", out)
        if not m:
            raise RuntimeError("no callgrind total in:\n" + out[-2000:])
        with open(os.path.join(tmp, "cg-01")) as f:      # thread 1: the main thread
            main_thread = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
    return int(m.group(1)), main_thread


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=("send", "noop", "e2e", "e2e_batch", "ping"))
    ap.add_argument("--n", type=int, default=None,
                    help="messages (default 100,000; 50,000 end to end; 2,000 pings)")
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    n = args.n if args.n is not None else {"send": 100000, "noop": 100000,
                                           "ping": 2000}.get(args.kind, 50000)
    if args.probe:
        probe(args.kind, n)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if args.kind == "noop":
            from run import build_noop             # this script's folder leads sys.path
            env[NOOP_DIR_ENV] = build_noop(tmp)
        (base, base_main), (full, full_main) = count(args.kind, 0, env), count(args.kind, n, env)
    print("%s: %d messages: %d - %d instructions = %.0f per message (main thread: %.0f)"
          % (args.kind, n, full, base, (full - base) / n, (full_main - base_main) / n))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Our clients under faults, with real processes: a router killed (SIGKILL)
and restarted under traffic, master/slave failover (what the lost link had
not written goes over the other one), a standby link that keeps failing,
os.fork() of a process with live clients, and interpreter exit with events
in flight.  Each counts what the application had handed over against what
arrived, and prints the figure (docs/reliability.md, ## Client)."""

import json
import logging
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from helpers import TEST_UNIT, package_env, start_net_peer, wait_for
from smartbus.errors import SmartBusError

RECEIVER = (30, 2, 11)             # the peer process that counts what arrives: unit, id, type
ROUTER_ARGS = ("--host", "127.0.0.1", "--unit-id", 0, "--no-ipc")


def numbered(seq, size=64):
    """Message ``seq``: its number (u32) first, ``size`` bytes in all."""
    return struct.pack("<I", seq) + bytes(size - 4)


def send_paced(client, rate, seconds, at=None, size=64, first=0):
    """Sends numbered messages to RECEIVER at ``rate`` per second for
    ``seconds``; ``at`` maps a time (s from the start) to a function called
    once when it passes.  Returns (accepted numbers, number of refusals)."""
    accepted, refused, seq = [], 0, first
    pending = sorted((at or {}).items())
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            return accepted, refused
        while pending and elapsed >= pending[0][0]:
            pending.pop(0)[1]()
        for seq in range(seq, first + int(elapsed * rate)):
            try:
                client.send_data(1, 3, RECEIVER[0], RECEIVER[1], RECEIVER[2], numbered(seq, size))
                accepted.append(seq)
            except SmartBusError:
                refused += 1
        seq = first + int(elapsed * rate)
        time.sleep(0.002)


def delivered(receiver, expected, timeout=15.0):
    """The message numbers the receiver got, once it has ``expected`` of
    them or ``timeout`` passed (bounded)."""
    wait_for(lambda: len(receiver.call(op="seqs")["seqs"]) >= expected, timeout, 0.1)
    return receiver.call(op="seqs")["seqs"]


def report(name, **figures):
    print("FIGURE %s: %s" % (name, json.dumps(figures)))


class Script:
    """A Python script (text) in its own process group; its output read by
    threads, with bounded waits: a hung process, or a child of it holding
    the pipes, cannot hang the test, and stop() kills them all."""

    def __init__(self, text, *args):
        self.proc = subprocess.Popen([sys.executable, "-c", text, *map(str, args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=package_env(),
                                     start_new_session=True)
        self.lines = queue.Queue()
        self.errors = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.errors.extend(self.proc.stderr),
                         daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout=20):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output within %s s" % timeout) from None

    def tell(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def stop(self):
        """Kills what is left of its process group; returns what it wrote on
        stderr so far."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        time.sleep(0.1)                          # the reader takes the last lines
        return "".join(self.errors)


def start_receiver(peers, master_port, slave_port=None):
    """RECEIVER in a peer process, on a router's port (and a slave's)."""
    p = peers()
    assert p.call(op="init", kind="net", unit=RECEIVER[0], port=master_port,
                  slave_port=slave_port, client_id=RECEIVER[1], client_type=RECEIVER[2])["ok"]
    assert p.call(op="wait_connected", timeout=10)["ok"]
    return p


def wait_registered_twice(client, who):
    """Waits until ``client`` heard from two routers that ``who`` (unit,
    client id) is registered there."""
    return client.log.wait("global", 2, lambda a: a[:2] == who and a[4] in (1, 2), timeout=15)


# ---- a router killed and restarted ------------------------------------------------------------

def test_router_killed_and_restarted_under_traffic(server_process, peers, net_client):
    """SIGKILL of the router at 2,000 msg/s, restarted on its port 1.5 s
    later: both ends register again by themselves and traffic resumes;
    sends are refused (-2) while no router is there, none is duplicated,
    and everything sent once both were back arrives."""
    router = server_process(*ROUTER_ARGS, "--port", 0)
    router.wait_ready()
    port = router.port
    receiver = start_receiver(peers, port)
    sender = net_client(1, port)
    assert wait_for(lambda: sender.log.of("global", lambda a: a[:2] == RECEIVER[:2]), 5)
    restarted, killed = [], []

    def kill():
        router.kill()
        killed.append(time.monotonic())

    def restart():
        srv = server_process(*ROUTER_ARGS, "--port", port)
        srv.wait_ready()
        restarted.append(time.monotonic())

    accepted, refused = send_paced(sender, 2000, 8.0, at={1.0: kill, 2.5: restart})
    assert restarted and len(sender.log.wait("connect", 2)) == 2
    back = [t for t, k, _ in sender.log.timed() if k == "connect"][1]
    got = delivered(receiver, len(accepted))
    assert len(got) == len(set(got)), "duplicates"
    assert set(got) <= set(accepted)
    # everything accepted in the last second (both registered again long before) arrived
    last = [s for s in accepted if s >= accepted[-1] - 2000]
    assert set(last) <= set(got)
    assert refused > 0                   # the outage was seen: -2 while no router
    lost = len(accepted) - len(got)
    report("router_restart", accepted=len(accepted), refused=refused, delivered=len(got),
           lost=lost, outage_s=round(restarted[0] - killed[0], 2),
           registered_again_after_restart_s=round(back - restarted[0], 2))
    assert lost <= 1000                  # what the killed router and the kernel held


# ---- master / slave ---------------------------------------------------------------------------

@pytest.fixture
def two_routers(server_process, peers, net_client):
    """Routers A and B; the sender (this process, unit TEST_UNIT, client 1)
    and the receiver (peer process) each registered on both, with A
    carrying the sender's traffic (B is held stopped until the sender has
    registered on A)."""
    a = server_process(*ROUTER_ARGS, "--port", 0)
    a.wait_ready()
    b = server_process(*ROUTER_ARGS, "--port", 0)
    b.wait_ready()
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        sender = net_client(1, a.port, slave_ip="127.0.0.1", slave_port=b.port)
        receiver = start_receiver(peers, a.port, b.port)
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    assert len(wait_registered_twice(sender, RECEIVER[:2])) == 2
    assert wait_for(lambda: len([e for e in receiver.events("global")
                                 if e[:2] == [TEST_UNIT, 1] and e[4] in (1, 2)]) == 2, 15)
    return a, b, sender, receiver


def test_failover_at_5000_msgs_per_second(two_routers):
    """SIGKILL of the active router at 5,000 msg/s: traffic goes on over the
    slave; lost are only messages the kernel had taken for the dead link
    (at most once); none is duplicated."""
    a, b, sender, receiver = two_routers
    accepted, refused = send_paced(sender, 5000, 4.0, at={2.0: a.kill})
    assert refused == 0                 # the slave stayed registered throughout
    got = delivered(receiver, len(accepted))
    assert len(got) == len(set(got)), "duplicates"
    assert set(accepted[-5000:]) <= set(got)     # the last second: all over the slave
    lost = len(accepted) - len(got)
    report("failover_5000", accepted=len(accepted), delivered=len(got), lost=lost)
    assert lost <= 1000


def test_failover_sends_what_the_lost_link_had_not_written(two_routers, caplog):
    """The active router stops reading (SIGSTOP), a burst of 60,000 x 1 KiB
    fills the kernel's buffers and stays in the link's write buffer, then
    the router is killed: every message the kernel took none of goes over
    the slave, in order; lost are only those the kernel had taken."""
    a, b, sender, receiver = two_routers
    count, size = 60000, 1024
    if kernel_buffer_bytes() >= count * size:
        pytest.skip("the kernel's socket buffers could take the whole burst")
    os.kill(a.proc.pid, signal.SIGSTOP)
    with caplog.at_level(logging.DEBUG, logger="smartbus.sdk"):
        assert sender.send_many(1, 3, *RECEIVER, [numbered(i, size) for i in range(count)]) \
            == count
        # the I/O thread took the queue into the link's write buffer, and
        # wrote what the kernel would take
        assert wait_for(lambda: sender.stats()["queued_msgs"] == 0, 10)
        time.sleep(0.2)
        a.kill()
        resent_logs = wait_for(lambda: [r.getMessage() for r in caplog.records
                                        if "not yet written" in r.getMessage()], 10)
    assert resent_logs, [r.getMessage() for r in caplog.records]
    resent = int(re.search(r"(\d+) messages not yet written", resent_logs[0]).group(1))
    got = delivered(receiver, resent, 30)
    # exactly the messages from the first one the kernel had not begun, in order
    assert got == list(range(count - resent, count)), (len(got), got[:3], resent)
    lost = count - len(got)
    report("failover_burst", sent=count, size=size, resent=resent, delivered=len(got),
           lost_taken_by_the_kernel=lost)
    assert 0 < resent and lost > 0       # both parts exist in this setup


def kernel_buffer_bytes():
    """The most a TCP connection's two socket buffers may hold here
    (tcp_wmem and tcp_rmem maxima), 0 where they cannot be read."""
    total = 0
    for name in ("tcp_wmem", "tcp_rmem"):
        try:
            with open("/proc/sys/net/ipv4/" + name) as f:
                total += int(f.read().split()[2])
        except (OSError, ValueError, IndexError):
            return 0
    return total


# ---- a standby link that keeps failing --------------------------------------------------------

class FlappingServer:
    """A port that accepts one connection and closes it, then refuses
    connections for 3 s, and again: a standby server in trouble."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.sock.listen(4)
            self.sock.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    conn, _ = self.sock.accept()
                except socket.timeout:
                    continue
                conn.close()
                self.accepted += 1
                break
            self.sock.close()                      # refused from now on
            if self._stop.wait(3.0):
                return
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", self.port))

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_a_failing_standby_link_reports_minus_20_once(server_process, peers, net_client):
    """NET.md §5.5: -20 once, further failures silent; a standby link whose
    server accepts then closes, then refuses, then accepts... does not
    report it again on each refusal while traffic flows over the master."""
    router = server_process(*ROUTER_ARGS, "--port", 0)
    router.wait_ready()
    receiver = start_receiver(peers, router.port)
    standby = FlappingServer()
    try:
        sender = net_client(1, router.port, slave_ip="127.0.0.1", slave_port=standby.port)
        accepted, refused = send_paced(sender, 500, 10.0)
        flaps = standby.accepted
    finally:
        standby.close()
    assert flaps >= 2, flaps                     # it accepted, refused, accepted...
    assert sender.log.of("connect_fail") == [(-20,)]
    assert refused == 0 and len(delivered(receiver, len(accepted))) == len(accepted)
    report("standby_minus_20", seconds=10, standby_accepts=flaps,
           connect_fail=sender.log.of("connect_fail"))


# ---- os.fork() --------------------------------------------------------------------------------

FORK_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from smartbus import ipc, net

    def wait(pred, timeout=10):
        end = time.monotonic() + timeout
        while not pred() and time.monotonic() < end:
            time.sleep(0.01)
        return pred()

    port, ipc_path, dst = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    net.Client.initialize(41)
    parent = net.Client.create(1, 11, "127.0.0.1", port)
    parent.activate()
    parent_ipc = ipc.Client.create(30, 3, ipc_path=ipc_path)
    parent_ipc.activate()
    assert wait(parent.is_connected) and wait(parent_ipc.is_connected)
    parent_iid = parent.launch_flow(0, 9, "p", "f", 1, 1.0, [])
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        report = {"closed": [parent.is_closed(), parent_ipc.is_closed()],
                  "forgotten": net.Client.find(1) is None}
        try:
            parent.send_data(1, 3, *dst, b"x")
        except RuntimeError as exc:
            report["error"] = str(exc)
        child = net.Client.create(2, 11, "127.0.0.1", port)
        child_ipc = ipc.Client.create(31, 3, ipc_path=ipc_path)
        child.activate()
        child_ipc.activate()
        report["child_connected"] = [wait(child.is_connected), wait(child_ipc.is_connected)]
        child_ipc.send_data(1, 3, *dst, b"from the child")
        report["child_iid"] = child_ipc.launch_flow(0, 9, "p", "f", 1, 1.0, [])
        os.write(from_child_w, json.dumps(report).encode() + b"\\n")
        os.read(to_child_r, 1)               # until the parent lets it end
        sys.exit(0)                          # a normal exit: atexit runs
    child_report = os.fdopen(from_child_r).readline()
    parent.send_data(1, 3, *dst, b"from the parent after the fork")
    print(json.dumps({"child": json.loads(child_report), "parent_iid": parent_iid,
                      "parent_iid_after": parent.launch_flow(0, 9, "p", "f", 1, 1.0, [])}),
          flush=True)
    sys.stdin.readline()                     # the test saw what it wanted
    parent.dispose()
    print("disposed", flush=True)
    sys.stdin.readline()
    os.write(to_child_w, b"x")
    start = time.monotonic()
    while time.monotonic() - start < 10:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print(json.dumps({"child_exit": os.waitstatus_to_exitcode(status),
                              "seconds": round(time.monotonic() - start, 2)}), flush=True)
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        print(json.dumps({"child_exit": "hung"}), flush=True)
    """)


def test_fork_with_live_clients(router, net_client):
    """A child of a process with live NET and IPC clients: they report
    closed there (a clear error on use), new ones made in the child work,
    the child draws its own invoke ids and exits normally; the parent's
    clients go on, and when the parent closes them the router sees it at
    once although the child still runs (the child closed its copies of
    their sockets)."""
    receiver = net_client(2, router.port)
    watcher = net_client(3, router.port)
    script = Script(FORK_SCRIPT, router.port, router.ipc_path, json.dumps([TEST_UNIT, 2, 11]))
    try:
        r = json.loads(script.line())
        child = r["child"]
        assert child["closed"] == [True, True] and child["forgotten"]
        assert "created in the parent process" in child["error"]
        assert child["child_connected"] == [True, True]
        assert r["parent_iid_after"] == r["parent_iid"] + 1
        assert child["child_iid"] not in (r["parent_iid"] + 1, r["parent_iid"] + 2)
        got = wait_for(lambda: {d for _, d in receiver.log.of("data")} >=
                       {b"from the child", b"from the parent after the fork"}, 10)
        assert got, receiver.log.of("data")
        # the parent's NET client (41/1) is still the one registered: no departure yet
        assert not watcher.log.of("global", lambda a: a[:2] == (41, 1) and a[4] == 0)

        script.tell()
        assert script.line() == "disposed"
        assert watcher.log.wait("global", 1, lambda a: a[:2] == (41, 1) and a[4] == 0,
                                timeout=5), "the router did not see the parent's close"
        script.tell()
        end = json.loads(script.line())
        assert end["child_exit"] == 0, end
        assert script.proc.wait(20) == 0
    finally:
        stderr = script.stop()
    assert "Traceback" not in stderr, stderr
    report("fork", child_exit_seconds=end["seconds"])


# ---- interpreter exit -------------------------------------------------------------------------

EXIT_SCRIPT = textwrap.dedent("""
    import sys, time
    from smartbus import net

    class Slow(net.Client):
        handled = 0

        def on_data(self, head, data):
            Slow.handled += 1
            time.sleep(0.001)                # events pile up in the sink

    net.Client.initialize(int(sys.argv[2]))
    c = Slow.create(2, 11, "127.0.0.1", int(sys.argv[1]))
    c.activate()
    c.wait_connected(20)                     # the flood must find it registered
    print("ready", flush=True)
    sys.stdin.readline()
    # until the flood's events pile up: messages received and not handled
    # yet (the sink's pending bytes leave out the batch being delivered: 0
    # once a whole flood is in that batch)
    deadline = time.monotonic() + 20
    while c.stats()["recv_msgs"] - Slow.handled == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    print(c.stats()["recv_msgs"] - Slow.handled, flush=True)
    sys.exit(0)                              # exits with them in flight
    """)


def test_interpreter_exit_with_events_in_flight(router, peers):
    """A process whose handler is slow exits while a peer floods it: it
    exits at once with status 0 (no hang, no crash)."""
    unit = 31
    script = Script(EXIT_SCRIPT, router.port, unit)
    try:
        assert script.line() == "ready"
        flooder = start_net_peer(peers, router, 32)
        flooder.start_call(op="send", dst=[unit, 2, 11], count=50000, max_size=256)
        script.tell()
        pending = int(script.line())
        start = time.monotonic()
        code = script.proc.wait(20)
        seconds = time.monotonic() - start
        assert flooder.reply(60)["ok"]
    finally:
        stderr = script.stop()
    assert pending > 0                       # events were in flight at exit
    assert code == 0 and "Fatal" not in stderr and "Traceback" not in stderr, (code, stderr)
    report("exit_in_flight", pending_messages=pending, exit_seconds=round(seconds, 2))
    assert seconds < 10

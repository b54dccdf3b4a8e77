"""smartbus benchmarks: throughput, end to end, contention, latency, memory,
side by side with the references, in one run.

    python benchmarks/run.py [--duration 2] [--skip vendor,zmq,memory] [--json-only]

Prints one table and one JSON line (prefixed "JSON "); see benchmarks/README.md.
Every case runs in separate processes (benchmarks/worker.py, and small C
programs compiled here with gcc): the router, the sender and the receiver
share the machine's cores.
"""

import argparse
import glob
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SDK = os.path.join(ROOT, "vendor", "smartbus-sdk")
WORKER = os.path.join(HERE, "worker.py")

ROUTER_UNIT = 0
SEND_UNIT, RECV_UNIT, VENDOR_UNIT, PING_UNIT = 20, 21, 22, 23
DST = [RECV_UNIT, 1, 11]                 # the receiver: unit 21, client 1, type 11
KB = 1024

NOOP_PYX = '''
# cython: language_level=3
cdef class Noop:
    def send_data(self, int cmd, int cmd_type, int dst_unit_id, int dst_client_id,
                  int dst_client_type, data):
        pass
'''


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- processes ------------------------------------------------------------------

def status_kb(pid, field):
    """A memory figure of /proc/PID/status (VmRSS, VmHWM...) in KiB; 0 if absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Proc:
    """A child answering one JSON line per command (lines from the worker
    carry a "@@ " prefix; other output, e.g. the vendor's trace, is skipped)."""

    def __init__(self, argv, prefix="@@ ", env=None):
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.update(env or {})
        self.prefix = prefix
        self.argv = argv
        self.err = tempfile.TemporaryFile(mode="w+")     # kept for the error message
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.err, env=full_env, text=True, bufsize=1)
        self.first = self.read()
        if not self.first.get("ok"):
            raise RuntimeError("%s did not start: %r" % (argv[:3], self.first))
        self.pid = self.p.pid

    def read(self):
        while True:
            line = self.p.stdout.readline()
            if not line:
                self.err.seek(0)
                last = (self.err.read().strip().splitlines() or [""])[-1]
                raise RuntimeError("%s exited (%s): %s" % (self.argv[2:3], self.p.wait(), last))
            if self.prefix and not line.startswith(self.prefix):
                continue
            return json.loads(line[len(self.prefix):] if self.prefix else line)

    def raw(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()
        return self.read()

    def call(self, **cmd):
        r = self.raw(json.dumps(cmd))
        if not r.get("ok"):
            raise RuntimeError("%s: %r -> %r" % (self.argv[:3], cmd, r))
        return r

    def hwm_kb(self):
        return status_kb(self.pid, "VmHWM")

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(("quit" if not self.prefix else json.dumps({"op": "quit"}))
                                   + "\n")
                self.p.stdin.flush()
                self.p.wait(10)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.p.kill()
                self.p.wait()


def worker(role, **args):
    return Proc([sys.executable, WORKER, role, json.dumps(args)])


class CRecv:
    """benchmarks/c/sbcount.c: the SDK receiving with a C counter."""

    def __init__(self, exe, port, unit=RECV_UNIT, inline=False):
        self.proc = Proc([exe, str(port), str(unit), "1", "11"] + (["inline"] if inline else []),
                         prefix="")

    def arm(self, n):
        self.proc.raw("reset")

    def wait(self, n, timeout=60):
        r = self.proc.raw("wait %d %g" % (n, timeout))
        return r["count"], r["last"]

    def close(self):
        self.proc.close()


class PyRecv:
    """worker pyrecv / zmqpull: arm(n) before the sender starts."""

    def __init__(self, proc):
        self.proc = proc

    def arm(self, n):
        self.proc.call(op="arm", n=n)

    def wait(self, n, timeout=60):
        r = self.proc.call(op="wait", timeout=timeout)
        return (n if r["count"] is None else r["count"]), r["last"]

    def close(self):
        self.proc.close()


# ---- builds ------------------------------------------------------------------------

def build_c(tmp):
    cc = os.environ.get("CC", "gcc")
    flags = ["-O2", "-std=c99", "-Wall", "-Wextra", "-pthread"]
    sdk_src = sorted(glob.glob(os.path.join(SDK, "src", "*.c")))
    out = {}
    out["sbcount"] = os.path.join(tmp, "sbcount")
    subprocess.check_call([cc] + flags + ["-DSMARTBUS_STATIC", "-I", os.path.join(SDK, "include"),
                           "-I", os.path.join(SDK, "src"), os.path.join(HERE, "c", "sbcount.c")]
                          + sdk_src + ["-o", out["sbcount"]])
    out["tcpecho"] = os.path.join(tmp, "tcpecho")
    subprocess.check_call([cc] + flags + [os.path.join(HERE, "c", "tcpecho.c"),
                                          "-o", out["tcpecho"]])
    return out


def build_noop(tmp):
    d = os.path.join(tmp, "noop")
    os.makedirs(d)
    with open(os.path.join(d, "sbnoop.pyx"), "w") as f:
        f.write(NOOP_PYX)
    subprocess.check_call([sys.executable, "-m", "cython", "-3", "sbnoop.pyx"], cwd=d)
    import sysconfig
    inc = sysconfig.get_paths()["include"]
    ext = sysconfig.get_config_var("EXT_SUFFIX")
    subprocess.check_call([os.environ.get("CC", "gcc"), "-O2", "-shared", "-fPIC", "-I", inc,
                           "sbnoop.c", "-o", "sbnoop" + ext], cwd=d)
    return d


# ---- measurements --------------------------------------------------------------------

def throughput(sender, recv, size, duration, batch=None, dst=DST, warm_n=20000):
    """Rate counted at the receiver: n messages / (last received - first sent)."""
    extra = {"batch": batch} if batch else {}
    # warm-up and calibration (the same loop, counted by the receiver too)
    rate = None
    for n in (warm_n, None):
        if n is None:
            n = max(warm_n, int(rate * 0.3))
        recv.arm(n)
        r = sender.call(op="send", size=size, dst=dst, n=n, **extra)
        recv.wait(n)
        rate = n / max(r["t1"] - r["t0"], 1e-6)
    n = max(warm_n, int(rate * duration))
    recv.arm(n)
    r = sender.call(op="send", size=size, dst=dst, n=n, **extra)
    got, last = recv.wait(n, timeout=max(60, 10 * duration))
    if got < n:
        raise RuntimeError("receiver got %d of %d messages" % (got, n))
    el = last - r["t0"]
    return {"msgs_s": n / el, "mb_s": n * size / el / 1e6, "calls_s": n / (r["t1"] - r["t0"]),
            "n": n, "full": r["full"], "seconds": el}


def call_rate(proc, size, duration):
    """Calls/s of a loop with no receiver (the do-nothing method)."""
    r = proc.call(op="calibrate", size=size, dst=DST)
    n = max(20000, int(r["rate"] * duration))
    r = proc.call(op="send", size=size, dst=DST, n=n)
    return {"msgs_s": n / (r["t1"] - r["t0"]), "calls_s": n / (r["t1"] - r["t0"]), "n": n,
            "mb_s": n * size / (r["t1"] - r["t0"]) / 1e6}


def c_echo_latency(exe, n, size):
    echo = subprocess.Popen([exe, "echo"], stdout=subprocess.PIPE, text=True)
    eport = int(echo.stdout.readline())
    relay = subprocess.Popen([exe, "relay", str(eport)], stdout=subprocess.PIPE, text=True)
    rport = int(relay.stdout.readline())
    try:
        out = subprocess.check_output([exe, "client", str(rport), str(n), str(size)], text=True,
                                      timeout=120)
        return json.loads(out)
    finally:
        for p in (relay, echo):
            p.kill()
            p.wait()


# ---- thread scaling (issue 15): send 64 B from 1, 2 and 4 threads ---------------------
# One client per thread, and one client shared by all the threads, against
# the C receiver.  Run it with a free-threaded Python too (the venv of
# .ci/freethreaded): benchmarks/threads.py reports whether the GIL is on.

THREADS = os.path.join(HERE, "threads.py")
THREADS_UNIT = 24
THREAD_COUNTS = (1, 2, 4)
#: a client nobody is: the router drops what is sent there (no receiver's work)
NOBODY = [RECV_UNIT, 99, 11]


def thread_scaling(crecv, port, duration):
    """{"own_1": throughput, "shared_2": ..., "gil": bool} for every thread
    count, each case in a sending process of its own."""
    out = {}
    for shared in (False, True):
        for threads in THREAD_COUNTS:
            if shared and threads == 1:
                continue                        # the same as own_1
            name = "%s_%d" % ("shared" if shared else "own", threads)
            log("thread scaling: %s..." % name)
            proc = Proc([sys.executable, THREADS, "threads", json.dumps(
                {"unit": THREADS_UNIT, "port": port, "threads": threads, "shared": shared})])
            try:
                out["gil"] = proc.first["gil"]
                out[name] = throughput(proc, crecv, 64, duration)
                out[name]["sender_cpus"] = proc.call(op="cpu")["cpu_per_s"]
                # the same number of calls again, dropped by the router
                r = proc.call(op="send", size=64, dst=NOBODY, n=out[name]["n"])
                out[name]["dropped_calls_s"] = r["n"] / (r["t1"] - r["t0"])
            finally:
                proc.close()
    return out


def report_threads(res):
    t = res.get("threads")
    if not t:
        return
    one, one_dropped = t["own_1"]["calls_s"], t["own_1"]["dropped_calls_s"]
    print()
    print("thread scaling, send 64 B (GIL %s): calls/s at the sender, msgs/s at the "
          "C receiver, x = calls/s over one thread, CPUs the sending process used; "
          "then calls/s to a client nobody is (dropped by the router), x" %
          ("on" if t["gil"] else "off"))
    for name in ["own_%d" % n for n in THREAD_COUNTS] + \
            ["shared_%d" % n for n in THREAD_COUNTS if n > 1]:
        r = t[name]
        print("  %-9s  %10s  %10s  %.2fx  %.2f CPUs  (%d refused with -7)   %10s  %.2fx" % (
            name, fmt_rate(r["calls_s"]), fmt_rate(r["msgs_s"]), r["calls_s"] / one,
            r["sender_cpus"], r["full"], fmt_rate(r["dropped_calls_s"]),
            r["dropped_calls_s"] / one_dropped))


# ---- the router's cases: 1 KiB references, scale, instructions (issue 14) --------

#: registered clients of the scale cases (8,192 = units 16..47 x 256 client ids)
SCALE_CLIENTS = (2, 100, 1000, 8192)
SCALE_PAIRS = 16
HEARTBEAT_BYTES = 52           # what rtload's clients send (NET.md §5.4, builds A/B)
#: the scale case stops (and says so) if the router grows beyond this
SCALE_RSS_LIMIT_MB = 4096
#: callgrind's scenarios: (payload bytes, packets per round, idle clients, messages)
CALLGRIND_CASES = ((64, 780, 0, 200000), (KB, 62, 0, 20000), (64, 1, 0, 20000),
                   (64, 1, 1000, 5000))


def build_router_tools(tmp):
    """benchmarks/c/pump.c and hbfloor.c (plain C), rtload.c (with the SDK's
    codec) and rtturn.c (with the router's sources, for callgrind)."""
    cc = os.environ.get("CC", "gcc")
    flags = ["-O2", "-g", "-std=c99", "-Wall", "-Wextra", "-pthread"]
    sdk = ["-DSMARTBUS_STATIC", "-I", os.path.join(SDK, "include"), "-I", os.path.join(SDK, "src")]
    out = {name: os.path.join(tmp, name) for name in ("pump", "hbfloor", "rtload", "rtturn")}
    for plain in ("pump", "hbfloor"):
        subprocess.check_call([cc] + flags + [os.path.join(HERE, "c", plain + ".c"),
                                              "-o", out[plain]])
    subprocess.check_call([cc] + flags + sdk + [os.path.join(HERE, "c", "rtload.c"),
                                                os.path.join(SDK, "src", "wire.c"),
                                                "-o", out["rtload"]])
    subprocess.check_call([cc] + flags + sdk + [os.path.join(HERE, "c", "rtturn.c")]
                          + sorted(glob.glob(os.path.join(SDK, "src", "*.c")))
                          + ["-o", out["rtturn"]])
    return out


def pump_reference(exe, seconds, size, hop):
    """benchmarks/c/pump.c: a C sender -> (a C relay ->) a C sink, framed
    `size`-byte messages in large writes; counted like every case."""
    procs = []
    try:
        sink = subprocess.Popen([exe, "sink"], stdout=subprocess.PIPE, text=True)
        procs.append(sink)
        port = int(sink.stdout.readline())
        if hop:
            relay = subprocess.Popen([exe, "relay", str(port)], stdout=subprocess.PIPE, text=True)
            procs.append(relay)
            port = int(relay.stdout.readline())
        sent = json.loads(subprocess.check_output(
            [exe, "send", str(port), "%g" % seconds, str(size)], text=True, timeout=seconds + 60))
        got = json.loads(sink.stdout.readline())
        if got["n"] != sent["n"]:
            raise RuntimeError("pump: %d sent, %d received" % (sent["n"], got["n"]))
        el = got["last"] - sent["t0"]
        return {"msgs_s": got["n"] / el, "mb_s": got["bytes"] / el / 1e6, "n": got["n"],
                "seconds": el}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def rss_kb(pid):
    return status_kb(pid, "VmRSS")


class RtLoad:
    """benchmarks/c/rtload.c: the clients of the scale cases."""

    def __init__(self, exe, port):
        self.p = subprocess.Popen([exe, str(port)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        self.first = json.loads(self.p.stdout.readline())

    def cmd(self, line, guard=None, timeout=900):
        """Sends one command; guard() is called every 0.5 s meanwhile and
        may return a reason to give up (the generator is then killed)."""
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.p.stdout], [], [], 0.5)
            if ready:
                text = self.p.stdout.readline()
                if not text:
                    raise RuntimeError("rtload exited (%s) on %r" % (self.p.wait(), line))
                return json.loads(text)
            why = guard() if guard else None
            if why:
                self.close()
                return {"ok": False, "error": why}
        self.close()
        return {"ok": False, "error": "%r took more than %d s" % (line, timeout)}

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def scale_cases(exe, floor_exe, duration, clients, idle_s, rss_limit_mb):
    """The router with 2 .. 8,192 registered clients (rtload): one pair
    streaming 64 B messages while the others heartbeat once a second;
    then idle (heartbeats only): the router's CPU and RSS; at the first
    stage with enough clients, SCALE_PAIRS pairs at once.  Then the floor
    of the idle CPU at the largest stage (hbfloor: a wake-up and a read
    per heartbeat, nothing else)."""
    router = worker("router", max_connections=max(clients) + 64)
    gen = None
    out = {"stages": [], "router_nofile": router.first.get("nofile")}
    try:
        gen = RtLoad(exe, router.first["port"])
        out["rtload_nofile"] = gen.first.get("nofile")
        out["rss_base_kb"] = rss_kb(router.pid)
        limit_kb = rss_limit_mb * 1024

        def guard():
            kb = rss_kb(router.pid)
            return ("the router's RSS reached %d MiB (limit %d MiB)" % (kb // 1024, rss_limit_mb)
                    if kb > limit_kb else None)

        for n in clients:
            log("router scale: %d clients..." % n)
            r = gen.cmd("connect %d" % n, guard=guard)
            if not r.get("ok"):
                out["error"] = "at %d clients: %s" % (n, r.get("error"))
                break
            stage = {"clients": n, "connect_s": r["seconds"]}
            p = gen.cmd("pump 1 %g 64" % duration)
            stage["msgs_s"] = p["n"] / (p["last"] - p["t0"])
            if n >= 2 * SCALE_PAIRS and "pairs" not in out:
                p = gen.cmd("pump %d %g 64" % (SCALE_PAIRS, duration))
                out["pairs"] = {"clients": n, "pairs": SCALE_PAIRS, "one_pair_msgs_s": stage["msgs_s"],
                                "msgs_s": p["n"] / (p["last"] - p["t0"]), "per_pair": p["pairs"]}
            cpu0 = router.call(op="cpu")["cpu_s"]
            r = gen.cmd("idle %g" % idle_s)
            cpu1 = router.call(op="cpu")["cpu_s"]
            stage.update(idle_cpu_pct=100.0 * (cpu1 - cpu0) / r["seconds"], idle_s=r["seconds"],
                         heartbeats=r["heartbeats"], answers=r["answers"],
                         rss_kb=rss_kb(router.pid))
            out["stages"].append(stage)
    finally:
        if gen is not None:
            gen.close()
        router.close()
    if out["stages"] and "error" not in out:
        log("idle floor: %d connections, a read per heartbeat..." % out["stages"][-1]["clients"])
        out["floor"] = json.loads(subprocess.check_output(
            [floor_exe, str(out["stages"][-1]["clients"]), "%g" % idle_s, str(HEARTBEAT_BYTES)],
            text=True, timeout=idle_s + 120))
    return out


def callgrind_cases(exe):
    """Instructions per forwarded message (rtturn under callgrind)."""
    if not shutil.which("valgrind"):
        return {"error": "valgrind not found"}
    out = []
    with tempfile.TemporaryDirectory() as d:
        for size, batch, idle, n in CALLGRIND_CASES:
            cg = os.path.join(d, "cg.out")
            r = json.loads(subprocess.check_output(
                ["valgrind", "--tool=callgrind", "--toggle-collect=measured_turn",
                 "--callgrind-out-file=" + cg, exe, str(size), str(batch), str(idle), str(n)],
                text=True, stderr=subprocess.DEVNULL, timeout=900))
            with open(cg) as f:
                ir = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
            out.append({"size": size, "batch": batch, "idle": idle, "messages": r["messages"],
                        "turns": r["turns"], "instructions": ir,
                        "per_message": ir / r["messages"]})
    return out


def router_rows(res, rows, targets):
    """The router's rows of the table (same columns as report()'s)."""
    def add(name, ours, ref_name="", ref="-", ratio=None, target="", met=None):
        rows.append((name, ours, ref_name, ref, "-" if ratio is None else "%.2fx" % ratio,
                     target, "" if met is None else ("yes" if met else "NO")))
        return ratio

    s1k = res.get("send_1024", {}).get("mb_s")
    for key, name, target in (("relay", "C pump via C relay", ">= 1.0x"),
                              ("direct", "C pump, no hop", "")):
        ref = res.get("pump_1024", {}).get(key, {}).get("mb_s")
        if ref:
            ratio = s1k / ref if s1k else None
            r = add("send 1 KiB bytes", "-" if s1k is None else "%.0f MB/s" % s1k, name,
                    "%.0f MB/s" % ref, ratio, target,
                    None if not target or ratio is None else ratio >= 1.0)
            if target:
                targets["send1k_vs_relay_pump"] = r
    sc = res.get("scale")
    if sc:
        stages = sc["stages"]
        first = stages[0]["msgs_s"] if stages else None
        for st in stages:
            n = st["clients"]
            last = n == SCALE_CLIENTS[-1]
            ratio = st["msgs_s"] / first if first else None
            r = add("router 64 B, %s clients" % format(n, ","), fmt_rate(st["msgs_s"]),
                    "%s clients" % stages[0]["clients"], fmt_rate(first), ratio,
                    ">= 0.8x" if last else "", (ratio >= 0.8) if last and ratio else None)
            if last:
                targets["scale_8192_vs_2"] = r
        if sc.get("pairs"):
            p = sc["pairs"]
            add("%d pairs at once, aggregate" % p["pairs"], fmt_rate(p["msgs_s"]),
                "one pair", fmt_rate(p["one_pair_msgs_s"]), p["msgs_s"] / p["one_pair_msgs_s"])
        floor = sc.get("floor")
        for st in stages:
            last = st["clients"] == SCALE_CLIENTS[-1]
            if st is stages[-1] and floor:
                ref = ("C epoll reader (floor)", "%.2f %%" % floor["cpu_pct"],
                       st["idle_cpu_pct"] / floor["cpu_pct"] if floor["cpu_pct"] else None)
            else:
                ref = ("heartbeats/s", "%.0f" % (st["heartbeats"] / st["idle_s"]), None)
            add("router CPU, %s idle clients" % format(st["clients"], ","),
                "%.2f %%" % st["idle_cpu_pct"], *ref,
                "< 5 %" if last else "", (st["idle_cpu_pct"] < 5) if last else None)
            if last:
                targets["idle_cpu_pct_8192"] = st["idle_cpu_pct"]
        if len(stages) > 1:
            a, b = stages[0], stages[-1]
            per = (b["rss_kb"] - a["rss_kb"]) * 1024.0 / (b["clients"] - a["clients"])
            add("router RSS per idle connection", "%.1f KiB" % (per / 1024),
                "RSS at %s clients" % format(b["clients"], ","), "%.0f MiB" % (b["rss_kb"] / 1024))
        if sc.get("error"):
            add("router scale: stopped", sc["error"])
    for c in res.get("callgrind", []) if isinstance(res.get("callgrind"), list) else []:
        add("instructions/msg %d B x%d%s" % (c["size"], c["batch"],
                                             ", %d idle" % c["idle"] if c["idle"] else ""),
            "%.0f" % c["per_message"], "callgrind", "-")


# ---- the run --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per case (default 2)")
    ap.add_argument("--skip", default="", help="comma list: vendor,zmq,noop,e2e,contention,"
                                               "latency,memory,many,threads,pump,scale,callgrind")
    ap.add_argument("--only", default="", help="comma list of the cases to run (same names, "
                                               "plus send)")
    ap.add_argument("--pings", type=int, default=10000)
    ap.add_argument("--flood", type=int, default=10_000_000, help="messages of the memory case")
    ap.add_argument("--stall-timeout", type=float, default=3.0,
                    help="router stall timeout of the memory case (s)")
    ap.add_argument("--clients", default=",".join(map(str, SCALE_CLIENTS)),
                    help="registered clients of the scale stages (comma list)")
    ap.add_argument("--idle", type=float, default=4.0,
                    help="seconds of heartbeats only per scale stage (router CPU)")
    ap.add_argument("--scale-rss-limit", type=int, default=SCALE_RSS_LIMIT_MB,
                    help="MiB: the scale case stops if the router grows beyond")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    only = set(filter(None, args.only.split(",")))

    def on(name):
        return name not in skip and (not only or name in only)

    D = args.duration
    tmp = tempfile.mkdtemp(prefix="sbbench")
    res = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "platform": platform.platform()}, "duration_s": D}
    procs = []
    t_start = time.monotonic()
    try:
        log("building the C helpers...")
        exe = build_c(tmp)
        tools = build_router_tools(tmp)
        router = worker("router")
        procs.append(router)
        port = router.first["port"]
        sender = worker("sender", unit=SEND_UNIT, port=port)
        procs.append(sender)
        crecv = CRecv(exe["sbcount"], port)
        procs.append(crecv)

        if on("send"):
            for size in (64, KB):
                log("send rate %d B..." % size)
                res["send_%d" % size] = throughput(sender, crecv, size, D)
        if on("pump"):
            log("1 KiB references: C pump via a C relay, and direct...")
            res["pump_1024"] = {"relay": pump_reference(tools["pump"], D, KB, hop=True),
                                "direct": pump_reference(tools["pump"], D, KB, hop=False)}
        if on("many"):
            for size in (64, KB):
                log("send_many %d B..." % size)
                res["send_many_%d" % size] = throughput(sender, crecv, size, D, batch=256)
        if on("latency"):
            log("latency...")
            # the C echo reference runs before and after our pings and the
            # faster run is kept (a conservative reference: it is the most
            # sensitive case to other load on the machine)
            echo1 = c_echo_latency(exe["tcpecho"], args.pings, 64)
            r = sender.call(op="ping", dst=DST, n=args.pings + 200, size=64, warmup=200)
            res["ping"] = {k: r[k] for k in ("p50_us", "p99_us", "mean_us", "n")}
            echo2 = c_echo_latency(exe["tcpecho"], args.pings, 64)
            res["c_echo"] = min(echo1, echo2, key=lambda e: e["p50_us"])
            res["c_echo_runs_p50_us"] = [echo1["p50_us"], echo2["p50_us"]]
            # the same round trips from a C client of our SDK (no Python): how
            # much of the ping time is the SDK's thread hand-offs, how much
            # Python; on a sink with a callback thread, then on an inline sink
            # (the callback on the I/O thread: one thread wake-up fewer)
            for key, inline in (("c_sdk_ping", False), ("c_sdk_ping_inline", True)):
                cping = CRecv(exe["sbcount"], port, unit=PING_UNIT, inline=inline)
                procs.append(cping)
                r = cping.proc.raw("ping %d %d %d %d 64" % (DST[0], DST[1], DST[2],
                                                           args.pings + 200))
                res[key] = {k: r.get(k) for k in ("p50_us", "p99_us", "mean_us", "n")}
                cping.close()
        if on("vendor"):
            log("vendor package...")
            try:
                vend = worker("vendor", unit=VENDOR_UNIT, port=port)
            except RuntimeError as exc:
                res["vendor_error"] = str(exc)
                vend = None
            if vend is not None:
                procs.append(vend)
                for size in (64, KB):
                    res["vendor_%d" % size] = throughput(vend, crecv, size, D, warm_n=500)
                vend.close()
        if on("threads"):
            res["threads"] = thread_scaling(crecv, port, D)
        crecv.close()

        if on("e2e") or on("contention"):
            for batch in (False, True):
                python_receiver_cases(res, procs, sender, port, on, D, batch)

        if on("zmq"):
            log("pyzmq...")
            try:
                pull = worker("zmqpull")
                procs.append(pull)
                push = worker("zmqpush", port=pull.first["port"])
                procs.append(push)
                res["zmq_version"] = push.first.get("zmq")
                for size in (64, KB):
                    res["zmq_%d" % size] = throughput(push, PyRecv(pull), size, D)
                push.close()
                pull.close()
            except RuntimeError as exc:
                res["zmq_error"] = str(exc)
        if on("noop"):
            log("do-nothing Cython method...")
            noop = worker("noop", path=build_noop(tmp))
            procs.append(noop)
            res["noop_64"] = call_rate(noop, 64, D)
            noop.close()
        res["router_hwm_kb"] = router.hwm_kb()
        res["sender_hwm_kb"] = sender.hwm_kb()
        sender.close()
        router.close()

        if on("memory"):
            log("memory: %d messages to a stalled receiver..." % args.flood)
            res["memory"] = memory_case(exe["sbcount"], args.flood, args.stall_timeout)
        if on("scale"):
            res["scale"] = scale_cases(tools["rtload"], tools["hbfloor"], D,
                                       [int(n) for n in args.clients.split(",") if n],
                                       args.idle, args.scale_rss_limit)
        if on("callgrind"):
            log("instructions per forwarded message (callgrind)...")
            res["callgrind"] = callgrind_cases(tools["rtturn"])
    finally:
        for p in procs:
            try:
                p.close()
            except Exception:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    res["total_s"] = time.monotonic() - t_start
    report(res)
    return 0


def python_receiver_cases(res, procs, sender, port, on, duration, batch):
    """End to end and contention to a Python receiver counting in on_data
    (64 B and 1 KiB) or, with ``batch``, in on_data_batch (64 B; keys
    e2e_batch_64, contended_batch_64)."""
    kind = "_batch" if batch else ""
    pyrecv = PyRecv(worker("pyrecv", unit=RECV_UNIT, port=port, batch=batch))
    procs.append(pyrecv)
    e2e64 = "e2e%s_64" % kind
    if on("e2e"):
        for size in (64,) if batch else (64, KB):
            log("end to end %d B%s..." % (size, ", on_data_batch" if batch else ""))
            res["e2e%s_%d" % (kind, size)] = throughput(sender, pyrecv, size, duration)
    if on("contention"):
        log("contention%s..." % (", on_data_batch" if batch else ""))
        if e2e64 not in res:
            res[e2e64] = throughput(sender, pyrecv, 64, duration)
        pyrecv.proc.call(op="busy", on=True)
        contended = res["contended%s_64" % kind] = throughput(sender, pyrecv, 64, duration)
        contended["busy_loops"] = pyrecv.proc.call(op="busy", on=False)["busy_loops"]
    pyrecv.close()


def memory_case(sbcount, n, stall_timeout):
    router = worker("router", stall_timeout=stall_timeout)
    port = router.first["port"]
    recv = sender = None
    try:
        sender = worker("sender", unit=SEND_UNIT, port=port)
        recv = CRecv(sbcount, port)
        recv.proc.raw("stall")
        r = sender.call(op="flood", n=n, size=64, dst=DST)
        st = router.call(op="stats")
        out = {"messages": n, "queued": r["queued"], "refused_7": r["refused_7"],
               "other_errors": r["other_errors"], "seconds": r["t1"] - r["t0"],
               "sender_hwm_kb": sender.hwm_kb(), "router_hwm_kb": router.hwm_kb(),
               "receiver_hwm_kb": recv.proc.hwm_kb(),
               "stalled_disconnects": st["stalled_disconnects"],
               "paused_reads": st["paused_reads"], "routed_msgs": st["routed_msgs"],
               "dropped_no_route": st["dropped_no_route"], "stall_timeout_s": stall_timeout}
        return out
    finally:
        for p in (recv, sender, router):
            if p is not None:
                p.close()


# ---- report ---------------------------------------------------------------------------

def fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.2f M/s" % (x / 1e6)
    return "%.0f k/s" % (x / 1e3) if x >= 1e4 else "%.0f /s" % x


def report(res):
    g = lambda k, f="msgs_s": res.get(k, {}).get(f) if isinstance(res.get(k), dict) else None
    rows = []

    def row(name, ours, ref=None, ref_name="", target=None, unit="rate", met=None):
        ratio = ours / ref if ours is not None and ref else None
        if unit == "rate":
            o, rf = fmt_rate(ours), fmt_rate(ref)
        elif unit == "MB":
            o = "-" if ours is None else "%.0f MB/s" % ours
            rf = "-" if ref is None else "%.0f MB/s" % ref
        else:
            o = "-" if ours is None else "%.1f us" % ours
            rf = "-" if ref is None else "%.1f us" % ref
        rows.append((name, o, ref_name, rf, "-" if ratio is None else "%.2fx" % ratio,
                     target or "", "" if met is None else ("yes" if met else "NO")))
        return ratio

    targets = {}
    s64, s1k = g("send_64"), g("send_1024")
    noop, zmq, vend = g("noop_64"), g("zmq_64"), g("vendor_64")
    r = row("send 64 B (C receiver)", s64, noop, "do-nothing Cython", ">= 0.6x",
            met=None if s64 is None or noop is None else s64 >= 0.6 * noop)
    targets["send64_vs_noop"] = r
    targets["send64_vs_zmq"] = row("send 64 B", s64, zmq, "pyzmq PUSH/PULL", ">= 3x",
                                   met=None if s64 is None or zmq is None else s64 >= 3 * zmq)
    targets["send64_vs_vendor"] = row("send 64 B", s64, vend, "vendor ctypes pkg", ">= 100x",
                                      met=None if s64 is None or vend is None else s64 >= 100 * vend)
    row("send 1 KiB (C receiver)", s1k, g("zmq_1024"), "pyzmq PUSH/PULL")
    row("send 1 KiB", s1k, g("vendor_1024"), "vendor ctypes pkg")
    mb = g("send_1024", "mb_s")
    row("send 1 KiB bytes", mb, g("zmq_1024", "mb_s"), "pyzmq PUSH/PULL", ">= 1000 MB/s",
        unit="MB", met=None if mb is None else mb >= 1000)
    if g("send_many_64"):
        row("send_many 64 B (batch 256)", g("send_many_64"), noop, "do-nothing Cython")
        row("send_many 1 KiB bytes", g("send_many_1024", "mb_s"), None, "", unit="MB")
    e64 = g("e2e_64")
    row("end to end 64 B (on_data)", e64, zmq, "pyzmq PUSH/PULL", ">= 1 M/s",
        met=None if e64 is None else e64 >= 1e6)
    row("end to end 1 KiB (on_data)", g("e2e_1024"), g("zmq_1024"), "pyzmq PUSH/PULL")
    row("end to end 1 KiB bytes", g("e2e_1024", "mb_s"), g("zmq_1024", "mb_s"), "pyzmq",
        unit="MB")
    c64 = g("contended_64")
    targets["contended_vs_uncontended"] = row(
        "contended 64 B (busy thread)", c64, e64, "uncontended e2e", ">= 0.5x",
        met=None if c64 is None or not e64 else c64 >= 0.5 * e64)
    eb64, cb64 = g("e2e_batch_64"), g("contended_batch_64")
    targets["e2e_batch_vs_send"] = row(
        "end to end 64 B (on_data_batch)", eb64, s64, "send 64 B", ">= 0.8x",
        met=None if eb64 is None or not s64 else eb64 >= 0.8 * s64)
    targets["contended_batch_vs_uncontended"] = row(
        "contended 64 B (on_data_batch)", cb64, eb64, "uncontended batch", ">= 0.8x",
        met=None if cb64 is None or not eb64 else cb64 >= 0.8 * eb64)
    p50 = res.get("ping", {}).get("p50_us")
    cp50 = res.get("c_echo", {}).get("p50_us")
    targets["ping_p50_vs_c_echo"] = row("ping p50 (10,000)", p50, cp50, "C TCP echo + relay",
                                        "<= 1.1x", unit="us",
                                        met=None if p50 is None or cp50 is None else p50 <= 1.1 * cp50)
    row("ping p99", res.get("ping", {}).get("p99_us"), res.get("c_echo", {}).get("p99_us"),
        "C TCP echo + relay", unit="us")
    row("ping p50 from a C SDK client", res.get("c_sdk_ping", {}).get("p50_us"), cp50,
        "C TCP echo + relay", unit="us")
    ci50 = res.get("c_sdk_ping_inline", {}).get("p50_us")
    targets["c_sdk_inline_ping_p50_vs_c_echo"] = row(
        "ping p50 from a C SDK client, inline sink", ci50, cp50, "C TCP echo + relay",
        "<= 1.1x", unit="us", met=None if ci50 is None or cp50 is None else ci50 <= 1.1 * cp50)
    row("vendor 64 B / 1 KiB", vend, g("vendor_1024"), "(vendor 1 KiB)")
    row("do-nothing Cython method", noop, None, "")

    router_rows(res, rows, targets)
    heads = ("case", "ours", "reference", "ref value", "ratio", "target", "met")
    widths = [max(len(str(r[i])) for r in rows + [heads]) for i in range(len(heads))]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, heads))
    print()
    print("smartbus benchmarks: %d CPUs (router, sender and receiver processes share them), "
          "Python %s, %.1f s per case" % (res["machine"]["cpus"], res["machine"]["python"],
                                          res["duration_s"]))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, r)))
    m = res.get("memory")
    if m:
        print()
        print("memory: %d x send_data(64 B) to a receiver that stopped reading: %d queued, "
              "%d refused with -7 (other errors: %s), %.1f s" % (
                  m["messages"], m["queued"], m["refused_7"], m["other_errors"] or "none",
                  m["seconds"]))
        print("        peak RSS: sender %.1f MiB, router %.1f MiB, stalled receiver %.1f MiB; "
              "router: %d stalled peer(s) disconnected after %.0f s, %d sender pauses, "
              "%d routed, %d dropped (no route)" % (
                  m["sender_hwm_kb"] / 1024, m["router_hwm_kb"] / 1024,
                  m["receiver_hwm_kb"] / 1024, m["stalled_disconnects"], m["stall_timeout_s"],
                  m["paused_reads"], m["routed_msgs"], m["dropped_no_route"]))
    report_threads(res)
    print("total %.0f s" % res["total_s"])
    res["ratios"] = targets
    print("JSON " + json.dumps(res, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())

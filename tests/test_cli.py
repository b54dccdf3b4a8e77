"""The ``smartbus`` command line (smartbus.cli), each subcommand run as
``python -m smartbus ...`` in a process of its own against a real router:
exit codes, what it prints on stdout and stderr, and what reaches the
other end (``listen`` sees what ``send`` sent, ``flow`` and ``notify``
reach a FlowServer, ``ping`` is answered, ``monitor`` reads a router's
endpoint); errors are one line and never a traceback."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request

import pytest

from helpers import TESTS_DIR, ServerProcess, package_env, wait_for

RUN_TIMEOUT = 60                  # seconds any one command may take (a loaded machine)
SUBCOMMANDS = ("server", "send", "listen", "ping", "flow", "notify", "monitor", "demo")


class CliProcess(ServerProcess):
    """``python -m smartbus ARGS``, left running (listen, server, monitor)."""

    COMMAND = ("-m", "smartbus")

    def wait_stderr(self, text, timeout=20):
        """The first stderr line that contains ``text`` (bounded wait)."""
        found = wait_for(lambda: next((line for line in list(self.stderr)
                                       if line and text in line), None), timeout)
        assert found, "no %r on stderr within %s s: %s" % (text, timeout, self.stderr_text())
        return found.rstrip("\n")

    def lines(self, count, timeout=20):
        return [self.line(timeout) for _ in range(count)]


@pytest.fixture
def cli_process():
    """Factory of CliProcess, all killed at teardown."""
    made = []

    def make(*args):
        made.append(CliProcess(*args))
        return made[-1]

    yield make
    for p in made:
        p.kill()


def cli(*args, stdin=b"", timeout=RUN_TIMEOUT):
    """Runs ``python -m smartbus ARGS`` to its end: (exit code, stdout,
    stderr) as text; stdin is bytes."""
    proc = subprocess.run([sys.executable, "-m", "smartbus", *map(str, args)], input=stdin,
                          capture_output=True, timeout=timeout, env=package_env())
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def one_line_error(err, prog):
    """The single line a failing command wrote on stderr, after its name."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prog + ": "), err
    return lines[0][len(prog) + 2:]


def at(router):
    return ("--port", router.port)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- help, version ----------------------------------------------------------------------


def test_version_and_help_everywhere():
    from smartbus.version import __version__
    assert cli("--version") == (0, "smartbus %s\n" % __version__, "")
    code, out, _ = cli("--help")
    assert code == 0 and all(name in out for name in SUBCOMMANDS), out
    for name in SUBCOMMANDS:
        code, out, err = cli(name, "--help")
        assert code == 0 and out.startswith("usage: smartbus %s" % name) and not err, (name, err)
    code, _, err = cli()
    assert code == 2 and err.startswith("usage: smartbus")


# ---- send and listen ------------------------------------------------------------------------


def test_listen_sees_what_send_sent(router, cli_process):
    listen = cli_process("listen", *at(router), "--client", 5, "--json", "--count", 4)
    assert listen.wait_stderr("listening as").startswith(
        "listening as 47:5:3 on 127.0.0.1:%d" % router.port)
    assert cli("send", *at(router), "--to", "47:5:3", "hello") == (0, "", "")
    assert cli("send", *at(router), "--to", "47:5:3", "--cmd", 9, "--cmd-type", 4,
               stdin=b"\x00\xffbinary")[0] == 0                      # stdin: one payload
    assert cli("send", *at(router), "--to", "47:5:3", "--lines",
               stdin=b"a\n\xc3\xa9t\xc3\xa9\n")[0] == 0
    got = [json.loads(line) for line in listen.lines(4)]
    assert listen.wait_exit() == 0
    # the tool sends from unit 46 (47 is the destination's), a free client id from 200
    assert [(g["src"]["unit"], g["src"]["type"]) for g in got] == [(46, 3)] * 4
    assert all(200 <= g["src"]["client"] < 255 for g in got), got
    assert [g["dst"] for g in got] == [{"unit": 47, "client": 5, "type": 3}] * 4
    assert [(g["cmd"], g["cmd_type"], g["length"], g["text"], g["hex"]) for g in got] == [
        (1, 3, 5, "hello", b"hello".hex()),
        (9, 4, 8, None, b"\x00\xffbinary".hex()),
        (1, 3, 1, "a", "61"),
        (1, 3, 5, "été", "c3a974c3a9"),
    ]


def test_listen_lines_in_text_and_hex_over_ipc(router, cli_process):
    listen = cli_process("listen", "--ipc", router.ipc_path, "--client", 9, "--count", 2)
    listen.wait_stderr("listening as 0:9:3 on %s" % router.ipc_path)
    assert cli("send", "--ipc", router.ipc_path, "--to", "0:9:3", "--hex", "00ff")[0] == 0
    assert cli("send", *at(router), "--to", "0:9:3", "plain text")[0] == 0
    first, second = listen.lines(2)
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} 0:200:3 > 0:9:3 cmd 1 type 3 len 2: hex 00ff$",
                    first), first
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} 47:200:3 > 0:9:3 cmd 1 type 3 len 10: plain text$",
                    second), second
    assert listen.wait_exit() == 0


def test_listen_duration_without_enough_packets_exits_3(router):
    code, out, err = cli("listen", *at(router), "--count", 1, "--duration", 0.5)
    assert code == 3 and out == ""
    assert err.splitlines()[-1] == "smartbus listen: 0 of 1 packets in 0.5 s"


def test_free_client_ids_are_taken_in_turn(router, cli_process):
    first = cli_process("listen", *at(router), "--duration", 30)
    assert first.wait_stderr("listening as").startswith("listening as 47:200:3")
    second = cli_process("listen", *at(router), "--duration", 30)
    # 200 is refused as taken (-10): the next id is tried
    assert second.wait_stderr("listening as").startswith("listening as 47:201:3")


def test_send_count_and_rate_with_progress(router, smartbus_client):
    receiver = smartbus_client("ipc")
    count, rate = 3000, 4000
    start = time.monotonic()
    code, out, err = cli("send", *at(router), "--to", "0:%d:3" % receiver.client_id,
                         "--count", count, "--rate", rate, "x")
    took = time.monotonic() - start
    assert code == 0 and out == ""
    # piped: a plain progress line per second, then the summary
    *progress, summary = err.splitlines()
    assert all(re.match(r"^sent \d+/3000, \d+/s$", line) for line in progress), err
    m = re.match(r"^sent 3000 packets \(3000 bytes\) to 0:200:3 in ([\d.]+) s, (\d+)/s$", summary)
    assert m, err
    assert count / rate * 0.9 <= float(m.group(1)) <= took        # paced, not faster
    assert int(m.group(2)) <= rate * 1.1
    got = [receiver.next_message(10)[1] for _ in range(count)]
    assert got == [b"x"] * count


def test_send_as_fast_as_possible_loses_nothing(router, smartbus_client):
    receiver = smartbus_client("net")
    count = 200000                                  # more than a send queue holds
    code, _, err = cli("send", *at(router), "--to", "40:%d:3" % receiver.client_id,
                       "--count", count, "--lines", stdin=b"a\nbb\n")
    assert code == 0, err
    assert err.splitlines()[-1].startswith("sent %d packets (%d bytes)" % (2 * count, 3 * count))
    sizes = [len(receiver.next_message(30)[1]) for _ in range(2 * count)]
    assert sizes == [1, 2] * count


# ---- ping -------------------------------------------------------------------------------


def test_ping_counts_round_trips(router, smartbus_client):
    target = smartbus_client("ipc")
    code, out, err = cli("ping", *at(router), "--to", "0:200:3", "-c", 3, "-i", 0.05)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "PING 0:200:3 from 47:200:3, 32 bytes"
    for seq, line in enumerate(lines[1:4], 1):
        assert re.match(r"^32 bytes from 0:200:3: seq=%d time=[\d.]+ ms$" % seq, line), line
    assert lines[4] == "--- 0:200:3 ping statistics ---"
    assert re.match(r"^3 sent, 3 received, 0% loss, time \d+ ms$", lines[5]), lines[5]
    m = re.match(r"^rtt min/avg/max/p99 = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms$", lines[6])
    low, avg, high, p99 = map(float, m.groups())
    assert low <= avg <= high and p99 == high             # 3 samples: p99 is the largest
    assert len(lines) == 7
    assert [h.cmd for h, _ in (target.next_message() for _ in range(3))] == [7, 7, 7]


def test_ping_with_a_deadline_waits_for_a_client_to_come(router, smartbus_client):
    """-c 1 -w S pings every interval until one answer came: a client that
    registers a moment later is waited for."""
    proc = subprocess.Popen([sys.executable, "-m", "smartbus", "ping", *map(str, at(router)),
                             "--to", "0:201:3", "-c", "1", "-w", "20", "-i", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=package_env())
    try:
        assert proc.stdout.readline().startswith("PING 0:201:3")
        time.sleep(0.5)                                   # a few pings go unanswered
        smartbus_client("ipc", client_id=201)
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and err == "", err
    stats = [line for line in out.splitlines() if " sent, " in line]
    m = re.match(r"^(\d+) sent, 1 received, \d+% loss", stats[0])
    assert m and int(m.group(1)) >= 2, stats        # pinged before the client was up


def test_ping_with_a_deadline_and_no_answer_exits_1(router):
    start = time.monotonic()
    code, out, err = cli("ping", *at(router), "--to", "0:77:3", "-c", 1, "-w", 0.5, "-i", 0.1)
    assert code == 1 and time.monotonic() - start < 10
    assert re.search(r"^\d+ sent, 0 received, 100% loss", out, re.M), out


def test_ping_without_answer_exits_1(router):
    code, out, err = cli("ping", *at(router), "--to", "0:77:3", "-c", 2, "-i", 0.05,
                         "--timeout", 0.5)
    assert code == 1 and err == ""
    head, title, stats = out.splitlines()                 # no answer lines, no rtt line
    assert head.startswith("PING 0:77:3 from ") and title == "--- 0:77:3 ping statistics ---"
    assert re.match(r"^2 sent, 0 received, 100% loss, time \d+ ms$", stats), stats


# ---- flows and notifications ---------------------------------------------------------------


@pytest.fixture
def calc(flow_server):
    """The plugin's FlowServer (process 0) with flows of project "calc"."""
    flow_server.calls = []
    flow_server.add_flow("calc", "add", lambda *xs: [sum(xs)])
    flow_server.add_flow("calc", "echo", lambda *xs: list(xs))
    flow_server.add_flow("calc", "record", lambda *xs: flow_server.calls.append(xs) or [])

    def boom(*xs):
        raise ValueError("cannot do %r" % (xs,))

    def slow(seconds):
        time.sleep(seconds)
        return ["late"]

    flow_server.add_flow("calc", "boom", boom)
    flow_server.add_flow("calc", "slow", slow)
    return flow_server


def any_invoke(text):
    """``text`` with its invoke ids as N (they start at random per process)."""
    return re.sub(r"invoke [1-9][0-9]* of", "invoke N of", text)


def test_flow_prints_ack_and_result(router, calc):
    code, out, err = cli("flow", *at(router), "calc", "add", 1, 2, "3.5")
    assert (code, out, any_invoke(err)) == (0, "[6.5]\n", "ack: invoke N of calc/add: 1 ok\n")
    code, out, _ = cli("flow", "--ipc", router.ipc_path, "calc", "echo", "text", "[1, 2]", "null",
                       '"7"')
    assert code == 0 and json.loads(out) == ["text", [1, 2], None, "7"]
    code, out, _ = cli("flow", *at(router), "--params", '["你好", {"a": 1}]', "calc", "echo")
    assert code == 0 and json.loads(out) == ["你好", {"a": 1}]


def test_flow_mode_1_ends_at_the_ack(router, calc):
    code, out, err = cli("flow", *at(router), "--mode", 1, "calc", "record", "x")
    assert (code, out, any_invoke(err)) == (0, "", "ack: invoke N of calc/record: 1 ok\n")
    assert wait_for(lambda: calc.calls == [("x",)])


def test_flow_failures_exit_1_with_the_reason(router, calc):
    code, out, err = cli("flow", *at(router), "calc", "nope")
    assert code == 1 and out == ""
    ack, error = any_invoke(err).splitlines()
    assert ack == "ack: invoke N of calc/nope: -23 unknown flow 'calc/nope'"
    assert error == ("smartbus flow: flow calc/nope failed: smartbus error -23 "
                     "(SMARTBUS_ERR_DEST_NONEXIST): destination does not exist "
                     "(unknown flow 'calc/nope')")
    code, out, err = cli("flow", *at(router), "calc", "boom", 4)
    assert code == 1 and out == ""
    assert any_invoke(err).splitlines() == [
        "ack: invoke N of calc/boom: 1 ok",
        "smartbus flow: flow calc/boom failed: smartbus error -99 (SMARTBUS_ERR_OTHER): "
        "other error (ValueError: cannot do (4,))"]


def test_flow_timeouts_exit_3(router, calc):
    code, out, err = cli("flow", *at(router), "--timeout", 0.5, "calc", "slow", 3)
    assert code == 3 and out == ""
    assert err.splitlines()[-1] == "smartbus flow: flow calc/slow: no result within 0.5 s"
    code, out, err = cli("flow", *at(router), "--timeout", 0.5, "--process", 9, "calc", "add")
    assert code == 3 and out == ""                      # nobody is process 9: no ack either
    assert err.splitlines()[-1] == "smartbus flow: flow calc/add: no result within 0.5 s"


def test_notify_reaches_the_flow_server(router, flow_server):
    notes = []
    flow_server.add_notification(lambda *args: notes.append(args), project_id="calc")
    assert cli("notify", *at(router), "--project", "calc", "--expires", 30, "alarm",
               "disk full") == (0, "", "")
    assert cli("notify", "--ipc", router.ipc_path, "--project", "calc", "--mode", 2, "news",
               stdin="从标准输入\n".encode()) == (0, "", "")
    assert wait_for(lambda: len(notes) == 2)
    assert sorted(notes) == [("calc", "alarm", 0, 30.0, "disk full"),
                             ("calc", "news", 2, 60.0, "从标准输入")]


# ---- errors ------------------------------------------------------------------------------------


def test_no_server_is_one_line_and_exit_3():
    port = free_port()
    code, out, err = cli("send", "--port", port, "--timeout", 0.5, "--to", "0:1:3", "x")
    assert code == 3 and out == ""
    assert one_line_error(err, "smartbus send") == (
        "cannot connect to the SmartBus server at 127.0.0.1:%d within 0.5 s (unreachable)" % port)


@pytest.mark.parametrize("args, message", [
    (["send", "--to", "1:2", "x"], "argument --to: destination must be UNIT:CLIENT:TYPE, got '1:2'"),
    (["send", "--to", "48:1:3", "x"], "argument --to: destination unit must be in 0..47, got 48"),
    (["send", "x"], "the following arguments are required: --to"),
    (["ping", "--to", "0:1:3", "-c", "0"], "argument -c/--count: --count must be in 1..2147483647, got 0"),
    (["listen", "--unit", "12"], "argument --unit: --unit must be in 16..47, got 12"),
    (["flow", "p", "f", "1", "--params", "[2]"], "give PARAMs or --params, not both"),
    (["monitor", "nowhere"], "'nowhere' is not HOST:PORT or PORT"),
    (["server", "--unit-id", "16"], "--unit-id must be in 0..15"),
    (["nosuch"], "argument SUBCOMMAND: invalid choice: 'nosuch'"),
])
def test_usage_errors_are_one_line_and_exit_2(args, message):
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("smartbus") and message in lines[0], err


def test_refusals_are_told_in_words(make_router, smartbus_client):
    router = make_router(user="bus", password="secret")
    code, _, err = cli("send", *at(router), "--to", "0:1:3", "x")
    assert code == 1
    assert one_line_error(err, "smartbus send") == (
        "the server at 127.0.0.1:%d refused the registration: smartbus error -4 "
        "(SMARTBUS_ERR_AUTHOR): authentication failed" % router.port)
    code, _, err = cli("send", *at(router), "--user", "bus", "--password", "wrong", "--to",
                       "0:1:3", "x")
    assert code == 1 and "smartbus error -6 (SMARTBUS_ERR_PWD)" in one_line_error(err, "smartbus send")
    mine = smartbus_client("net", client_id=12, server=router, user="bus", password="secret")
    code, _, err = cli("send", *at(router), "--unit", 40, "--client", mine.client_id, "--to",
                       "0:1:3", "x", "--user", "bus", "--password", "secret")
    assert code == 1
    assert one_line_error(err, "smartbus send") == (
        "client id 12 is taken on the server at 127.0.0.1:%d: choose another --client"
        % router.port)


def test_sending_to_its_own_unit_is_refused(router):
    code, _, err = cli("send", *at(router), "--unit", 30, "--to", "30:1:3", "x")
    assert code == 1
    assert one_line_error(err, "smartbus send").startswith(
        "packet 1 of 1 refused: smartbus error -11 (SMARTBUS_ERR_SEND_OWN)")


# ---- server and monitor ------------------------------------------------------------------------------


def test_server_subcommand_with_monitor(cli_process, smartbus_client):
    srv = cli_process("server", "--port", 0, "--no-ipc", "--monitor", "127.0.0.1:0")
    line = srv.wait_ready()
    m = re.match(r"^smartbus router unit 0 listening on 127.0.0.1:(\d+), "
                 r"monitor (http://127\.0\.0\.1:\d+/)$", line)
    assert m, line
    client = smartbus_client("net", server=types.SimpleNamespace(host="127.0.0.1",
                                                                port=srv.port))
    with urllib.request.urlopen(m.group(2) + "json", timeout=10) as answer:
        doc = json.load(answer)
    assert [(c["unit"], c["client"], c["kind"]) for c in doc["connections"]] == [
        (40, client.client_id, "net")]
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.wait_exit() == 0
    assert srv.line() == "smartbus router stopped\n"


def test_monitor_needs_prometheus_client_said_in_one_line():
    code = ("import sys; sys.modules['prometheus_client'] = None; from smartbus.cli import main; "
            "sys.exit(main(['server', '--port', '0', '--no-ipc', '--monitor', '0']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env=package_env())
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == ("smartbus.server: the router monitor needs prometheus_client: "
                           "pip install 'smartbus[monitor]'\n")


def test_monitor_piped_prints_plain_blocks(make_router, smartbus_client):
    router = make_router(monitor=("127.0.0.1", 0))
    client = smartbus_client("net", server=router, info="watched")
    code, out, err = cli("monitor", "%d" % router.monitor.address[1], "-n", 2, "-i", 0.3)
    assert code == 0 and err == "" and "\x1b" not in out
    blocks = out.split("--- ")[1:]
    assert len(blocks) == 2
    for block in blocks:
        lines = block.splitlines()
        assert lines[1].startswith("smartbus router unit 0 (")
        assert lines[2].startswith("clients 1, connections 1; routed ")
        assert lines[4].split() == ["CLIENT", "KIND", "PEER", "IN/S", "OUT/S", "KB", "IN/S",
                                    "KB", "OUT/S", "QUEUED", "STATE", "INFO"]
        row = lines[5].split()
        assert row[:2] == ["40:%d:3" % client.client_id, "net"] and row[-2:] == ["ok", "watched"]
    first_rates = blocks[0].splitlines()[5].split()[3:7]
    second_rates = blocks[1].splitlines()[5].split()[3:7]
    assert first_rates == ["-"] * 4                       # no rate before a second look
    assert all(re.match(r"^[\d.]+$", r) for r in second_rates), second_rates


def test_monitor_unreachable_is_one_line_and_exit_1():
    port = free_port()
    code, out, err = cli("monitor", port, "-n", 1, "--timeout", 1)
    assert code == 1 and out == ""
    assert one_line_error(err, "smartbus monitor").startswith(
        "cannot read the monitor at http://127.0.0.1:%d/json: " % port)


def test_demo_runs():
    code, out, err = cli("demo")
    assert code == 0, err
    assert out.splitlines()[-1] == "demo   done"


# ---- the tour of README.md and docs/cli.md, as written --------------------------------

DOCS_WITH_TOUR = ["README.md", "docs/cli.md"]


def tour_of(name):
    """The first ```sh block of a document of this checkout, or None."""
    path = os.path.join(os.path.dirname(TESTS_DIR), name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        m = re.search(r"^```sh\n(smartbus server.*?)^```$", f.read(), re.S | re.M)
    return m.group(1) if m else None


def port_free(port):
    """Nothing listens on ``port`` (connections of a server that just
    stopped may linger: the router binds with SO_REUSEADDR, so does this)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("name", DOCS_WITH_TOUR)
def test_the_documented_tour_runs_as_written(name, short_tmp):
    """The shell tour runs as pasted: on the documented ports (8089, 8090),
    with only the IPC socket moved to a private path through the
    environment, as any user may."""
    tour = tour_of(name)
    if tour is None:
        pytest.skip("%s is not beside these tests" % name)
    if not (port_free(8089) and port_free(8090)):
        pytest.skip("the documented ports 8089/8090 are in use on this machine")
    env = package_env(SMARTBUS_IPC_PATH=os.path.join(short_tmp, "ipc"))
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    r = subprocess.run(["bash", "-e", "-c", tour + "wait\n"], cwd=short_tmp, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "listening on 127.0.0.1:8089" in r.stdout
    assert re.search(r"\bhello\b", r.stdout), r.stdout            # listen printed the packet
    assert "3 received" in r.stdout or "3 packets transmitted, 3 received" in r.stdout, r.stdout

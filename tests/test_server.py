"""smartbus.server, the router runner: the ``python -m smartbus.server``
command (options, the ready line, SIGTERM/SIGINT ending with exit code 0,
errors) and the Server class (arguments, its IPC socket file).  What the
router does with packets is in test_router.py."""

import os
import signal
import socket
import stat

import pytest

from smartbus.server import Server, main

from helpers import wait_for


# ---- the command ---------------------------------------------------------------------


def test_ready_line_options_and_sigterm(server_process, net_client):
    srv = server_process("--host", "127.0.0.1", "--port", 0, "--unit-id", 3, "--no-ipc")
    line = srv.wait_ready()
    assert line == "smartbus router unit 3 listening on 127.0.0.1:%d" % srv.port
    c = net_client(7, srv.port)
    assert c.log.of("connect") == [(3,)]                   # the router's unit
    assert srv.terminate() == 0
    assert srv.line() == "smartbus router stopped\n"
    assert c.log.wait("disconnect") == [()]


def test_the_command_raises_its_open_files_limit_to_the_hard_limit(server_process):
    srv = server_process("--port", 0, "--no-ipc", nofile=(256, 1024))
    srv.wait_ready()
    with open("/proc/%d/limits" % srv.proc.pid) as f:
        line = [x for x in f if x.startswith("Max open files")][0]
    assert line.split()[3:5] == ["1024", "1024"], line
    assert srv.terminate() == 0


def test_sigint_ends_it_too(server_process):
    srv = server_process("--port", 0, "--no-ipc")
    srv.wait_ready()
    srv.proc.send_signal(signal.SIGINT)
    assert srv.wait_exit() == 0
    assert srv.line() == "smartbus router stopped\n"
    assert "Traceback" not in srv.stderr_text()


def test_credentials_options(server_process, net_client):
    srv = server_process("--port", 0, "--no-ipc", "--user", "bus", "--password", "secret")
    srv.wait_ready()
    refused = net_client(7, srv.port, connect=False)
    accepted = net_client(8, srv.port, user="bus", password="secret")
    assert refused.log.wait("connect_fail") == [(-4,)]      # no user given
    assert accepted.log.of("connect") == [(0,)]
    assert srv.terminate() == 0


def test_ipc_path_option(short_tmp, server_process, ipc_client):
    path = os.path.join(short_tmp, "cli")
    srv = server_process("--port", 0, "--ipc-path", path)
    line = srv.wait_ready()
    assert line.startswith("smartbus router unit 0 listening on 127.0.0.1:")
    assert line.endswith(", ipc %s" % path)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    c = ipc_client(7, path)
    assert c.log.of("connect") == [(0,)]
    c.dispose()
    assert srv.terminate() == 0
    assert not os.path.exists(path)                      # removed by the server that made it


def test_default_ipc_path_follows_the_environment(short_tmp, server_process):
    path = os.path.join(short_tmp, "env")
    srv = server_process("--port", 0, env={"SMARTBUS_IPC_PATH": path})   # like the clients'
    assert srv.wait_ready().endswith(", ipc %s" % path)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert srv.terminate() == 0


def test_no_ipc_option(short_tmp, server_process):
    path = os.path.join(short_tmp, "none")
    srv = server_process("--port", 0, "--ipc-path", path, "--no-ipc")
    line = srv.wait_ready()
    assert "ipc" not in line
    assert not os.path.exists(path)
    assert srv.terminate() == 0


@pytest.mark.parametrize("args, message", [
    (["--unit-id", "16"], "--unit-id must be in 0..15"),
    (["--unit-id", "-1"], "--unit-id must be in 0..15"),
    (["--port", "65536"], "--port must be in 0..65535"),
    (["--port", "http"], "invalid int value: 'http'"),
    (["--colour"], "unrecognized arguments: --colour"),
])
def test_bad_options_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(args + ["--no-ipc"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_port_in_use_exits_1(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["--port", str(taken.getsockname()[1]), "--no-ipc"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("smartbus.server: ") and "in use" in err.lower(), err


def test_a_regular_file_as_ipc_path_exits_1_and_is_kept(short_tmp, capsys):
    path = os.path.join(short_tmp, "regular")
    with open(path, "w") as f:
        f.write("data")
    assert main(["--port", "0", "--ipc-path", path]) == 1
    assert "not a socket" in capsys.readouterr().err
    with open(path) as f:
        assert f.read() == "data"


# ---- the Server class -------------------------------------------------------------------


def test_server_arguments_and_lifecycle():
    for bad in (dict(unit_id=16), dict(unit_id=-1), dict(unit_id="0"), dict(port=65536),
                dict(port=-2), dict(max_out_bytes=(16 << 10) - 1), dict(stall_timeout=0),
                dict(registration_timeout=-1), dict(max_connections=0),
                dict(user="u" * 65), dict(user="bus", password="p" * 129)):
        with pytest.raises(ValueError):
            Server(**bad)
    with Server(unit_id=2) as srv:
        assert srv.port > 0 and srv.unit_id == 2 and srv.ipc_path is None
        assert repr(srv) == "<smartbus.server.Server unit 2 on 127.0.0.1:%d>" % srv.port
        st = srv.stats()
        assert st["clients"] == 0 and st["accepted"] == 0
    srv.stop()                                            # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        srv.stats()


def test_stale_socket_replaced_and_live_one_kept(short_tmp, make_router, ipc_client):
    path = os.path.join(short_tmp, "ipc")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()                                             # a stale socket file stays behind
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    srv = make_router(ipc_path=path)
    ipc_client(7, path).dispose()
    # a second server on the same path is refused; the first keeps serving
    with pytest.raises(OSError, match="in use"):
        Server(port=0, ipc_path=path)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    ipc_client(8, path)
    assert srv.stats()["registered"] == 2
    srv.stop()
    assert not os.path.exists(path)                       # removed by the server that made it


def test_a_path_that_is_not_a_socket_is_refused_and_kept(short_tmp):
    path = os.path.join(short_tmp, "regular")
    with open(path, "w") as f:
        f.write("keep me")
    with pytest.raises(OSError, match="not a socket"):
        Server(port=0, ipc_path=path)
    with open(path) as f:
        assert f.read() == "keep me"


# ---- credentials ----------------------------------------------------------------------

SECRET = "s3cret-Pa55"


def password_file(directory, text=SECRET + "\n", mode=0o600):
    path = os.path.join(directory, "password")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def registrations_checked(srv, net_client, first_id=7):
    """A client with the wrong password is refused (-6), one with the right
    password accepted."""
    wrong = net_client(first_id, srv.port, connect=False, user="bus", password="wrong-guess")
    right = net_client(first_id + 1, srv.port, user="bus", password=SECRET)
    assert wrong.log.wait("connect_fail") == [(-6,)]
    assert right.log.of("connect") == [(0,)]


def test_password_file(short_tmp, server_process, net_client):
    path = password_file(short_tmp)
    srv = server_process("--port", 0, "--no-ipc", "--user", "bus", "--password-file", path)
    srv.wait_ready()
    registrations_checked(srv, net_client)
    with open("/proc/%d/cmdline" % srv.proc.pid, "rb") as f:
        assert SECRET.encode() not in f.read()            # not in the process list
    assert srv.terminate() == 0
    assert "warning" not in srv.stderr_text()


def test_password_from_the_environment(server_process, net_client):
    srv = server_process("--port", 0, "--no-ipc", "--user", "bus",
                         env={"SMARTBUS_PASSWORD": SECRET})
    srv.wait_ready()
    registrations_checked(srv, net_client)
    assert srv.terminate() == 0


def test_password_option_works_and_warns(server_process, net_client):
    srv = server_process("--port", 0, "--no-ipc", "--user", "bus", "--password", SECRET)
    srv.wait_ready()
    registrations_checked(srv, net_client)
    assert srv.terminate() == 0
    assert "--password is visible to other users" in srv.stderr_text()


@pytest.mark.parametrize("args, env, source", [
    (["--password", "x"], {}, "--password"),
    ([], {"SMARTBUS_PASSWORD": "x"}, "$SMARTBUS_PASSWORD"),
])
def test_a_password_without_a_user_is_refused(capsys, monkeypatch, args, env, source):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_:
        main(args + ["--no-ipc", "--port", "0"])
    assert exit_.value.code == 2
    assert "a password (%s) needs --user" % source in capsys.readouterr().err
    with pytest.raises(ValueError, match="a password needs a user name"):
        Server(password="x")


def test_password_file_problems(short_tmp, capsys):
    missing = os.path.join(short_tmp, "missing")
    assert main_exit(["--user", "bus", "--password-file", missing]) == 1
    assert "cannot read the password file %s" % missing in capsys.readouterr().err
    empty = password_file(short_tmp, text="\n")
    assert main_exit(["--user", "bus", "--password-file", empty]) == 1
    assert "is empty" in capsys.readouterr().err
    path = password_file(short_tmp)
    assert main_exit(["--user", "bus", "--password-file", path, "--password", "x"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def main_exit(args):
    """The exit code of the command (it must fail before serving)."""
    with pytest.raises(SystemExit) as exit_:
        main(args + ["--no-ipc", "--port", "0"])
    return exit_.value.code


def test_a_password_file_readable_by_others_gets_a_warning(short_tmp, server_process):
    path = password_file(short_tmp, mode=0o644)
    srv = server_process("--port", 0, "--no-ipc", "--user", "bus", "--password-file", path)
    srv.wait_ready()
    assert srv.terminate() == 0
    assert "password file %s is readable by other users" % path in srv.stderr_text()


def test_passwords_appear_in_no_trace_log_or_repr(short_tmp, server_process, peers):
    path = password_file(short_tmp)
    srv = server_process("--port", 0, "--no-ipc", "--user", "bus", "--password-file", path,
                         env={"SMARTBUS_TRACE": "1"})
    srv.wait_ready()
    guesses = {}
    for unit, password in ((16, "wrong-guess-1"), (17, SECRET)):
        p = peers(SMARTBUS_TRACE="1")
        assert p.call(op="init", kind="net", unit=unit, port=srv.port, user="bus",
                      password=password)["ok"]
        guesses[password] = p
    assert guesses[SECRET].call(op="wait_connected", timeout=5)["ok"]
    assert wait_for_event(guesses["wrong-guess-1"], "connect_fail") == [[-6]]
    for p in guesses.values():
        p.close()
    assert srv.terminate() == 0
    router_log = srv.stderr_text()
    assert "router: registered 11/17/1" in router_log         # the trace was on
    assert "refused: -6" in router_log
    for text in [router_log] + ["".join(p.stderr) for p in guesses.values()]:
        assert SECRET not in text and "wrong-guess-1" not in text
    # nor in the Python objects
    with Server(user="bus", password=SECRET) as server:
        shown = repr(server) + repr(vars(server)) + repr(server.stats())
        assert SECRET not in shown


def wait_for_event(peer, kind, timeout=5.0):
    return wait_for(lambda: peer.events(kind), timeout)

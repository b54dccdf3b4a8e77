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
                dict(port=-2)):
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

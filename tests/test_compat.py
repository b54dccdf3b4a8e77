"""Drop-in compatibility with the old ctypes package smartbus-client-python
2.0.1 (/work/shared/API.md): the whole documented surface (modules,
classes, functions, methods, properties, classmethods, signatures with
parameter names and defaults, exception base classes) and the behaviours
of its source that programs relied on.  A change that breaks a program
written for the old package fails here.

The old API is written down below as data (OLD_*), not imported: the old
package cannot be installed beside ours (both are ``smartbus/``)."""

import concurrent.futures
import gc
import inspect
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from helpers import TEST_UNIT, WireServer, package_env, recording

# ---- the documented surface -----------------------------------------------------------

#: module -> the names ``from module import *`` gave
OLD_STAR_NAMES = {
    "smartbus": {"IpcClient", "NetClient"},
    "smartbus.head": {"Head"},
    "smartbus.net": {"Client"},
    "smartbus.ipc": {"Client"},
    "smartbus.utils": {"b2s_recode", "s2b_recode", "to_bytes", "to_str", "to_unicode",
                       "LoggerMixin"},
    # no __all__ in the old module: its public names, the codes among them
    "smartbus.errors": {"SmartBusError", "check", "error_code_message",
                        "AlreadyInitializedError", "NotInitializedError",
                        "AlreadyExistsError", "InvokeFlowIdError", "SMARTBUS_ERR_OK",
                        "SMARTBUS_ERR_ARGUMENT", "SMARTBUS_ERR_TIMEOUT", "SMARTBUS_ERR_OTHER"},
}

OLD_ERROR_CODES = {
    -1: "SMARTBUS_ERR_ARGUMENT", -2: "SMARTBUS_ERR_CONN_NOT_ESTAB",
    -3: "SMARTBUS_ERR_CONNECT_BREAK", -4: "SMARTBUS_ERR_AUTHOR", -5: "SMARTBUS_ERR_USER",
    -6: "SMARTBUS_ERR_PWD", -7: "SMARTBUS_ERR_BUFF_FULL", -8: "SMARTBUS_ERR_NODE_NOTEXIST",
    -9: "SMARTBUS_ERR_CLI_NOTEXIST", -10: "SMARTBUS_ERR_CONNECTED", -11: "SMARTBUS_ERR_SEND_OWN",
    -12: "SMARTBUS_ERR_UNITID_INVALID", -13: "SMARTBUS_ERR_CLIENTID_INVALID",
    -14: "SMARTBUS_ERR_NON_INIT", -15: "SMARTBUS_ERR_MAX_DATASIZE",
    -16: "SMARTBUS_ERR_CMDTYPE_INVALID", -17: "SMARTBUS_ERR_CLIENTTYPE_INVALID",
    -18: "SMARTBUS_ERR_SEND_DATA", -19: "SMARTBUS_ERR_MEM_ALLOC",
    -20: "SMARTBUS_ERR_ESTABLI_CONNECT", -21: "SMARTBUS_ERR_CLI_TOOMANY",
    -22: "SMARTBUS_ERR_CLI_EXIST", -23: "SMARTBUS_ERR_DEST_NONEXIST",
    -24: "SMARTBUS_ERR_REGISTERED_REPEAT", -25: "SMARTBUS_ERR_TIMEOUT", -99: "SMARTBUS_ERR_OTHER",
}

HEAD_PROPERTIES = ["cmd", "cmd_type", "src_unit_client_type", "src_unit_id",
                   "src_unit_client_id", "dst_unit_client_type", "dst_unit_id",
                   "dst_unit_client_id", "packet_size", "data_length"]

#: methods and handlers both clients have: name -> parameters (after self)
CLIENT_METHODS = {
    "activate": "",
    "send_data": "cmd, cmd_type, dst_unit_id, dst_client_id, dst_client_type, data",
    "ping": "dst_unit_id, dst_client_id, dst_client_type, data=None",
    "launch_flow": "server_unit_id, process_index, project_id, flow_id, mode, timeout, params",
    "notify": "server_unit_id, process_index, project_id, title, mode, expires, txt",
    "on_connect": "",
    "on_connect_fail": "error_code",
    "on_disconnect": "",
    "on_data": "head, data",
    "on_flow_ack": "head, project_id, invoke_id, status_code, msg",
    "on_flow_resp": "head, project_id, invoke_id, params",
    "on_flow_timeout": "head, project_id, invoke_id",
    "on_flow_error": "head, project_id, invoke_id, error_code",
    "on_global_connect_state_changed":
        "unit_id, client_id, client_type, access_unit_id, status_code, info",
}
CLIENT_PROPERTIES = ["unit_id", "client_id", "client_type", "user", "password", "info"]

#: (class path, what) -> parameters; ``cls`` and ``self`` left out
OLD_SIGNATURES = {
    ("smartbus.net.Client", "initialize"): "unit_id, global_connect_callback=None, lib_path=''",
    ("smartbus.net.Client", "create"): "*args, **kwargs",
    ("smartbus.net.Client", "find"): "client_id, default=None",
    ("smartbus.net.Client", "__init__"):
        "client_id, client_type, master_ip, master_port, slave_ip=None, slave_port=None, "
        "user=None, password=None, info=None, event_executor=None",
    ("smartbus.ipc.Client", "__init__"):
        "client_id, client_type, user=None, password=None, info=None, lib_path='', "
        "event_executor=None",
    ("smartbus.ipc.Client", "create"): "*args, **kwargs",
    ("smartbus.ipc.Client", "get_or_create"): "*args, **kwargs",
    ("smartbus.ipc.Client", "get"): "",
    ("smartbus.ipc.Client", "instance"): "",
    ("smartbus.ipc.Client", "destroy"): "",
    ("smartbus.ipc.Client", "dispose"): "",
    ("smartbus.ipc.Client", "__del__"): "",
    ("smartbus.errors.SmartBusError", "__init__"): "code, message",
    ("smartbus.errors", "check"): "code, raise_if_err=True",
    ("smartbus.utils", "to_bytes"): "s, encoding='utf-8'",
    ("smartbus.utils", "to_str"): "s, encoding='utf-8'",
    ("smartbus.utils", "to_unicode"): "s, encoding='utf-8'",
    ("smartbus.utils", "b2s_recode"): "bs, source_encoding=None, target_encoding=None",
    ("smartbus.utils", "s2b_recode"): "s, source_encoding=None, target_encoding=None",
    ("smartbus.utils.LoggerMixin", "get_logger"): "",
}
for _cls in ("smartbus.net.Client", "smartbus.ipc.Client"):
    OLD_SIGNATURES.update({(_cls, name): params for name, params in CLIENT_METHODS.items()})

#: what ours adds to an old signature: (class path, what) -> the parameters
#: appended after the old ones (with defaults, so every old call still works)
EXTENSIONS = {
    ("smartbus.ipc.Client", "__init__"): "ipc_path=None",
    ("smartbus.errors.SmartBusError", "__init__"): None,   # message got a default (None)
}

CLASSMETHODS = {
    "smartbus.net.Client": ["initialize", "create", "find"],
    "smartbus.ipc.Client": ["create", "get_or_create", "get", "instance", "destroy"],
    "smartbus.utils.LoggerMixin": ["get_logger"],
}

#: exception class -> the built-in classes the old code raised in its cases
EXCEPTION_BASES = {
    "SmartBusError": (Exception,),
    "AlreadyInitializedError": (RuntimeError,),
    "NotInitializedError": (RuntimeError,),
    "AlreadyExistsError": (KeyError, RuntimeError),
    "InvokeFlowIdError": (Exception,),
}


def resolve(path):
    """The object at a dotted path: a module, or an attribute of one."""
    import importlib
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def parameters(text):
    """The inspect parameters of a parameter list written as in a ``def``."""
    namespace = {}
    exec("def f(%s): pass" % text, namespace)
    return list(inspect.signature(namespace["f"]).parameters.values())


def our_parameters(owner, name):
    fn = inspect.getattr_static(owner, name) if inspect.isclass(owner) else getattr(owner, name)
    if isinstance(fn, (classmethod, staticmethod)):
        fn = fn.__func__
    params = list(inspect.signature(fn).parameters.values())
    if inspect.isclass(owner) and not isinstance(inspect.getattr_static(owner, name),
                                                 staticmethod):
        assert params and params[0].name in ("self", "cls"), (owner, name, params)
        params = params[1:]
    return params


def described(params):
    return [(p.name, p.kind, p.default) for p in params]


@pytest.mark.parametrize("module", sorted(OLD_STAR_NAMES))
def test_star_import_gives_the_old_names(module):
    namespace = {}
    exec("from %s import *" % module, namespace)
    missing = OLD_STAR_NAMES[module] - set(namespace)
    assert not missing, missing


def test_package_layout():
    import smartbus
    from smartbus import ipc, net
    assert smartbus.NetClient is net.Client and smartbus.IpcClient is ipc.Client
    # the old package's modules imported each other: after "import smartbus"
    # these were reachable as attributes
    for name in ("errors", "head", "ipc", "net", "utils"):
        assert inspect.ismodule(getattr(smartbus, name)), name


@pytest.mark.parametrize("owner, name", sorted(OLD_SIGNATURES), ids="::".join)
def test_signature(owner, name):
    ours = described(our_parameters(resolve(owner), name))
    old = described(parameters(OLD_SIGNATURES[owner, name]))
    extension = EXTENSIONS.get((owner, name), "")
    if extension is None:                  # a documented relaxation: defaults added
        assert [p[:2] for p in ours] == [p[:2] for p in old], (ours, old)
        return
    assert ours == old + described(parameters(extension)), (ours, old)


@pytest.mark.parametrize("owner", sorted(CLASSMETHODS))
def test_classmethods(owner):
    cls = resolve(owner)
    for name in CLASSMETHODS[owner]:
        assert isinstance(inspect.getattr_static(cls, name), classmethod), name
    assert getattr(cls, "instance", None) == getattr(cls, "get", None)


@pytest.mark.parametrize("owner, names", [
    ("smartbus.net.Client", CLIENT_PROPERTIES + ["master_ip", "master_port", "slave_ip",
                                                 "slave_port"]),
    ("smartbus.ipc.Client", CLIENT_PROPERTIES),
    ("smartbus.errors.SmartBusError", ["code", "message"]),
    ("smartbus.utils.LoggerMixin", ["logger"]),
])
def test_properties(owner, names):
    cls = resolve(owner)
    for name in names:
        assert isinstance(inspect.getattr_static(cls, name), property), name


def test_handlers_are_methods_of_both_clients():
    from smartbus import ipc, net
    for cls in (net.Client, ipc.Client):
        for name in CLIENT_METHODS:
            assert callable(getattr(cls, name)), (cls, name)


@pytest.mark.parametrize("name", sorted(EXCEPTION_BASES))
def test_exception_classes(name):
    from smartbus import errors
    cls = getattr(errors, name)
    for base in EXCEPTION_BASES[name]:
        assert issubclass(cls, base), (cls, base)


def test_head():
    from smartbus.head import Head
    assert str(inspect.signature(Head)) == "(raw=None)"      # issue 11: it failed
    raw = bytes([0x5A, 0xA5, 9, 3, 11, 21, 2, 12, 22, 4, 0, 0]) + \
        (27).to_bytes(4, "little") + (7).to_bytes(4, "little")
    h = Head(raw)
    assert [getattr(h, n) for n in HEAD_PROPERTIES] == [9, 3, 11, 21, 2, 12, 22, 4, 27, 7]
    for name in HEAD_PROPERTIES:
        assert type(getattr(h, name)) is int and name + "=" in repr(h), name
        with pytest.raises(AttributeError):            # read-only
            setattr(h, name, 1)


def test_error_codes_and_check():
    from smartbus.errors import SmartBusError, check, error_code_message
    assert error_code_message == OLD_ERROR_CODES
    assert check(0) is None and check(0, False) is None
    e = check(-2, raise_if_err=False)
    assert isinstance(e, SmartBusError) and (e.code, e.message) == (-2, "SMARTBUS_ERR_CONN_NOT_ESTAB")
    assert check(-1000, False).message == "UNDEFINED_ERROR"
    with pytest.raises(SmartBusError) as info:
        check(-7)
    assert (info.value.code, info.value.message) == (-7, "SMARTBUS_ERR_BUFF_FULL")
    assert SmartBusError(-25, "mine").message == "mine"


def test_text_helpers():
    from smartbus.utils import b2s_recode, s2b_recode, to_bytes, to_str, to_unicode
    assert to_bytes(None) is None and to_str(None) is None and to_unicode(None) is None
    assert to_bytes("你好") == "你好".encode() and to_bytes("你好", "gbk") == "你好".encode("gbk")
    assert to_bytes(b"x") == b"x" and to_str(b"x") == "x" and to_unicode("y") == "y"
    assert to_str("你好".encode("gbk"), "gbk") == "你好"
    for helper in (to_bytes, to_str, to_unicode):           # the old source's TypeError
        for value in (5, 1.5, [b"x"], object()):
            with pytest.raises(TypeError):
                helper(value)
    assert b2s_recode(None) is None and s2b_recode(None) is None
    assert b2s_recode("汉".encode("cp936"), "cp936", "utf-8") == "汉"
    assert s2b_recode("汉", "utf-8", "cp936") == "汉".encode("cp936")


def test_logger_mixin():
    from smartbus.utils import LoggerMixin

    class Mine(LoggerMixin):
        pass

    name = "%s.%s" % (__name__, Mine.__qualname__)
    assert Mine.get_logger() is logging.getLogger(name) and Mine().logger.name == name


# ---- exceptions of the old code's cases ------------------------------------------------

def test_net_exceptions_are_the_old_classes(net_lib):
    from smartbus.errors import AlreadyExistsError, AlreadyInitializedError
    with pytest.raises(RuntimeError) as info:                 # initialize twice
        net_lib.initialize(20)
    assert isinstance(info.value, AlreadyInitializedError)
    for bad in (256, -1, "abc"):                              # the old int() + range check
        with pytest.raises(ValueError):
            net_lib.create(bad, 11, "127.0.0.1", 8089)
    c = net_lib.create(210, 11, "127.0.0.1", 8089)
    try:
        with pytest.raises(KeyError) as info:                 # duplicate local client id
            net_lib.create(210, 11, "127.0.0.1", 8089)
        assert isinstance(info.value, AlreadyExistsError)
        assert net_lib.find(210) is c and net_lib.find(211) is None and net_lib.find(211, 5) == 5
    finally:
        c.dispose()


def test_net_client_before_initialize_is_a_runtime_error():
    # a fresh interpreter: initialize() is once per process
    code = ("from smartbus.net import Client\n"
            "from smartbus.errors import NotInitializedError\n"
            "try:\n"
            "    Client.create(1, 11, '127.0.0.1', 8089)\n"
            "except RuntimeError as e:\n"
            "    assert isinstance(e, NotInitializedError), e\n"
            "    print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], env=package_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr


def test_ipc_singleton(router, ipc_client):
    from smartbus.errors import AlreadyExistsError
    from smartbus.ipc import Client
    assert Client.get() is None and Client.instance() is None
    c = ipc_client(30, router.ipc_path, activate=False)
    assert Client.get() is c and Client.instance() is c
    with pytest.raises(RuntimeError) as info:                 # a second one
        Client.create(31, 3, ipc_path=router.ipc_path)
    assert isinstance(info.value, AlreadyExistsError)
    assert Client.get_or_create(31, 9, info="ignored") is c   # arguments ignored
    Client.destroy()
    assert c.is_closed() and Client.get() is None
    Client.destroy()                                          # none left: harmless
    c2 = Client.get_or_create(32, 3, ipc_path=router.ipc_path)
    try:
        assert c2 is not c and Client.get() is c2 and c2.client_id == 32
        c2.__del__()                                          # what the collector calls
        assert c2.is_closed() and Client.get() is None
    finally:
        c2.dispose()


# ---- what the constructors keep ---------------------------------------------------------

def test_net_settings_are_converted_as_before(net_lib):
    cases = [  # (arguments, expected master_ip, master_port, slave_ip, slave_port)
        (dict(master_ip="127.0.0.1", master_port="8089"), "127.0.0.1", 8089, None, 0xFFFF),
        (dict(master_ip="127.0.0.1", master_port=8089, slave_ip=0, slave_port=0),
         "127.0.0.1", 8089, "0", 0xFFFF),
        (dict(master_ip="127.0.0.1", master_port=8089, slave_ip="", slave_port=None),
         "127.0.0.1", 8089, "", 0xFFFF),
        (dict(master_ip="127.0.0.1", master_port=8089, slave_ip="127.0.0.2", slave_port="8090"),
         "127.0.0.1", 8089, "127.0.0.2", 8090),
    ]
    for kwargs, *expected in cases:
        c = net_lib.create(212, 11, **kwargs)
        try:
            assert [c.master_ip, c.master_port, c.slave_ip, c.slave_port] == expected, kwargs
        finally:
            c.dispose()


@pytest.mark.parametrize("kind", ["net", "ipc"])
def test_user_password_info_are_kept_as_text(kind, net_lib, short_tmp):
    # the docs said "password (int)": 123456 is stored, and sent, as '123456'
    from smartbus import _native
    from smartbus.ipc import Client as IpcClient
    path = os.path.join(short_tmp, "wire")
    with WireServer(path if kind == "ipc" else None) as srv:
        if kind == "net":
            c = net_lib.create(213, 11, "127.0.0.1", srv.port, user=None, password=123456)
        else:
            c = IpcClient.create(33, 3, password=123456, user=None, ipc_path=path)
        try:
            assert (c.user, c.password, c.info) == (None, "123456", None)
            c.activate()
            reg = _native.decode_packet(srv.accept().recv_packet(cmd=1))
            assert (reg["user"], reg["password"]) == (b"", b"123456")
            assert reg["info"] == ("%s 0.1.0" % type(c).__qualname__).encode()   # a default
        finally:
            c.dispose()
    c = net_lib.create(214, 11, "127.0.0.1", 1, user=7, info=["a"])
    try:
        assert (c.user, c.password, c.info) == ("7", None, "['a']")
    finally:
        c.dispose()


def test_the_password_is_never_logged(make_router, net_client, ipc_client, short_tmp, caplog):
    # the old IPC constructor logged it at INFO level
    caplog.set_level(logging.DEBUG)
    srv = make_router(user="me", password="s3cret-pw", ipc_path=os.path.join(short_tmp, "ipc"))
    net_client(225, srv.port, user="me", password="s3cret-pw").dispose()
    ipc_client(36, srv.ipc_path, user="me", password="s3cret-pw").dispose()
    wrong = net_client(226, srv.port, user="me", password="wrong-pw-9", connect=False)
    assert wrong.log.wait("connect_fail", timeout=10) == [(-6,)]
    assert caplog.records
    for record in caplog.records:
        assert "s3cret-pw" not in record.getMessage() and "wrong-pw-9" not in record.getMessage()


def test_credentials_given_as_numbers_register(make_router, net_client):
    srv = make_router(user="42", password="123456")
    c = net_client(215, srv.port, user=42, password=123456)
    assert c.is_connected()


# ---- unit ids ---------------------------------------------------------------------------

def test_net_unit_id_is_the_access_points_once_registered(make_router, net_client):
    srv = make_router(unit_id=3)
    c = net_client(216, srv.port, activate=False)
    assert c.unit_id == TEST_UNIT                      # the unit given to initialize
    c.activate()
    assert c.wait_connected(10) and c.connected.wait(10)
    assert c.unit_id == 3 == c.access_unit_id          # the server's, as the old code did
    c.dispose()
    assert c.unit_id == 3


def test_ipc_unit_id(make_router, ipc_client, short_tmp):
    srv = make_router(unit_id=5, ipc_path=os.path.join(short_tmp, "ipc"))
    c = ipc_client(34, srv.ipc_path, activate=False)
    assert c.unit_id is None
    c.activate()
    assert c.wait_connected(10) and c.connected.wait(10) and c.unit_id == 5


# ---- wait_connected -----------------------------------------------------------------------

def free_port():
    """A port nothing listens on (bound for a moment, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wait_connected(router, net_client, ipc_client):
    c = net_client(217, router.port, activate=False)
    with pytest.raises(RuntimeError, match="activate"):
        c.wait_connected(1)
    with pytest.raises(ValueError):
        c.wait_connected(-1)
    c.activate()
    assert c.wait_connected() is True and c.wait_connected(0) is True
    assert c.connected.is_set()                        # on_connect ran before it returned
    i = ipc_client(35, router.ipc_path, activate=False)
    i.activate()
    assert i.wait_connected(10) is True
    c.dispose()
    assert c.wait_connected() is False                 # closed: at once, never a hang


def test_wait_connected_returns_after_on_connect(router, net_client):
    # the SDK is registered before its event reaches on_connect: waiting in
    # that window still returns only once on_connect is done
    class Slow(recording(resolve("smartbus.net.Client"))):
        def on_connect(self):
            time.sleep(0.5)
            super().on_connect()

    c = net_client(224, router.port, cls=Slow, activate=False)
    c.activate()
    deadline = time.monotonic() + 10
    while not c.is_connected() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert c.is_connected() and not c.connected.is_set()
    assert c.wait_connected(10) and c.connected.is_set()


def test_wait_connected_times_out(net_client):
    c = net_client(218, free_port(), connect=False)
    t0 = time.monotonic()
    assert c.wait_connected(0.5) is False
    assert 0.45 <= time.monotonic() - t0 < 5
    assert c.log.wait("connect_fail", timeout=5) == [(-20,)]


def test_wait_connected_returns_when_the_client_is_closed_meanwhile(net_client):
    c = net_client(219, free_port(), connect=False)
    result = []
    waiter = threading.Thread(target=lambda: result.append(c.wait_connected()), daemon=True)
    waiter.start()
    time.sleep(0.2)
    c.dispose()
    waiter.join(10)
    assert not waiter.is_alive() and result == [False]


def test_wait_connected_with_an_event_executor(router, net_client):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        c = net_client(220, router.port, activate=False, event_executor=pool)
        c.activate()
        assert c.wait_connected(10)
        c.dispose()


def test_a_host_that_does_not_resolve_says_so(net_lib, caplog):
    host = "no-such-host.invalid"
    try:
        socket.getaddrinfo(host, 8089, type=socket.SOCK_STREAM)
        pytest.skip("%s resolves here" % host)
    except socket.gaierror as exc:
        reason = exc.strerror                  # the resolver's words (gai_strerror)
    caplog.set_level(logging.WARNING, logger="smartbus.sdk")
    c = recording(net_lib).create(221, 11, host, 8089)
    try:
        c.activate()
        assert c.log.wait("connect_fail", timeout=30) == [(-20,)]
        assert c.wait_connected(0.1) is False
        lines = [r.getMessage() for r in caplog.records if r.name == "smartbus.sdk"]
        assert any(host in line and reason in line for line in lines), (reason, lines)
        assert not any("No route to host" in line for line in lines), lines
    finally:
        c.dispose()


# ---- handlers ------------------------------------------------------------------------

@pytest.mark.parametrize("executor", [False, True])
def test_an_exception_in_a_handler_is_logged(router, net_client, caplog, executor):
    class Failing(recording(resolve("smartbus.net.Client"))):
        def on_connect(self):
            super().on_connect()
            raise ZeroDivisionError("in on_connect")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        c = net_client(222, router.port, cls=Failing, activate=False,
                       event_executor=pool if executor else None)
        c.activate()
        assert c.wait_connected(10)                    # on_connect raised: still True
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records):
            time.sleep(0.01)
        assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
        c.dispose()


# ---- both packages install smartbus/ ---------------------------------------------------

def import_copy(tmp_path, with_old_leftovers):
    """Imports a copy of our package (with the old package's ``_c/`` beside
    it or not) in a fresh interpreter; returns the CompletedProcess."""
    import smartbus
    copy = tmp_path / "site" / "smartbus"
    shutil.copytree(os.path.dirname(os.path.abspath(smartbus.__file__)), copy,
                    ignore=shutil.ignore_patterns("*.c", "__pycache__", "_c"))
    if with_old_leftovers:
        (copy / "_c").mkdir()
        for name in ("__init__.py", "mutual.py", "net.py", "ipc.py", "helper.py"):
            (copy / "_c" / name).write_text("")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    return subprocess.run([sys.executable, "-W", "always", "-c",
                           "import smartbus; print(smartbus.__file__)"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)


def test_leftovers_of_the_old_package_are_reported(tmp_path):
    r = import_copy(tmp_path, with_old_leftovers=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "site" / "smartbus" / "__init__.py")
    leftover = str(tmp_path / "site" / "smartbus" / "_c")
    assert "RuntimeWarning" in r.stderr and leftover in r.stderr, r.stderr
    assert "pip uninstall smartbus-client-python smartbus" in r.stderr, r.stderr


def test_no_warning_without_leftovers(tmp_path):
    r = import_copy(tmp_path, with_old_leftovers=False)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_clients_can_be_collected(router, net_lib):
    # the old NET clients could never be released: ours go away when disposed
    import weakref
    c = net_lib.create(223, 11, "127.0.0.1", router.port)
    ref = weakref.ref(c)
    c.dispose()
    del c
    gc.collect()
    assert ref() is None

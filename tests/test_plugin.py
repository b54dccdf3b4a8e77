"""The pytest plugin smartbus.testing, used as a user would: through its
``pytest11`` entry point, by pytest run in a process of its own on test
files in a directory apart from this suite (the examples of
docs/testing.md, then files that check teardown, markers and failures)."""

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap

import pytest

from helpers import TESTS_DIR, package_env

DOCS = os.path.join(os.path.dirname(TESTS_DIR), "docs", "testing.md")
README = os.path.join(os.path.dirname(TESTS_DIR), "README.md")
#: a test file shown in the docs: a python block whose first line names it
EXAMPLE = re.compile(r"```python\n# (test_\w+\.py)\n(.*?)```", re.S)


def run_pytest(directory, *args):
    """pytest on ``directory`` in a subprocess (plugins autoloaded, as in a
    user's environment): (exit code, output)."""
    env = package_env()
    # the `smartbus` script of this interpreter's environment comes first
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--timeout", "120", *args, str(directory)],
                          cwd=str(directory), capture_output=True, text=True, timeout=300,
                          env=env)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_entry_point_names_the_plugin():
    found = importlib.metadata.entry_points()
    # Python 3.9's entry_points() is a dict of groups (select() and group= came in 3.10)
    group = found.select(group="pytest11") if hasattr(found, "select") else found["pytest11"]
    plugins = {e.name: e.value for e in group}
    assert plugins.get("smartbus") == "smartbus.testing", \
        "smartbus is not installed with its pytest11 entry point: %r" % plugins


def examples_of(path):
    with open(path, encoding="utf-8") as f:
        return EXAMPLE.findall(f.read())


@pytest.mark.skipif(not os.path.exists(DOCS), reason="docs/ is not beside these tests")
def test_the_documented_examples_pass(tmp_path):
    examples = examples_of(DOCS)
    assert len(examples) == 3
    # README.md shows one of them: the same file, to the letter
    assert set(examples_of(README)) <= set(examples) and examples_of(README)
    tests = 0
    for name, code in examples:
        (tmp_path / name).write_text(code, encoding="utf-8")
        tests += code.count("\ndef test_") + code.startswith("def test_")
    code, out = run_pytest(tmp_path)
    assert code == 0, out
    assert "%d passed" % tests in out, out


USER_SUITE = '''
import os
import socket
import stat

import pytest

seen = {}


def test_1_fixtures_are_live(smartbus_server, flow_server, smartbus_client):
    seen["port"], seen["ipc"] = smartbus_server.port, smartbus_server.ipc_path
    assert stat.S_ISSOCK(os.lstat(smartbus_server.ipc_path).st_mode)
    assert flow_server.connected and flow_server.process_index == 0
    assert flow_server.unit_id == smartbus_server.unit_id == 0
    net = smartbus_client("net")
    ipc = smartbus_client("ipc", client_id=33)
    assert net.is_connected() and net.address == (33, 1, 3)
    assert smartbus_client("net").client_id == 2
    assert ipc.is_connected() and ipc.address == (0, 33, 3)
    seen["clients"] = [net, ipc]


def test_2_everything_was_closed_at_teardown():
    assert all(c.is_closed() for c in seen["clients"])
    assert not os.path.exists(seen["ipc"])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", seen["port"]), timeout=2).close()


@pytest.mark.smartbus_server(unit_id=3, user="u", password="p")
@pytest.mark.flow_server(process_index=7, user="u", password="p")
def test_3_markers_configure_them(smartbus_server, flow_server, smartbus_client):
    assert smartbus_server.unit_id == 3
    assert (flow_server.unit_id, flow_server.process_index) == (3, 7)
    assert smartbus_client("net", user="u", password="p").access_unit_id == 3


@pytest.mark.smartbus_server(user="u", password="p")
def test_4_a_refused_client_fails_with_the_code(smartbus_client):
    with pytest.raises(AssertionError, match=r"not registered within 0.5 s \\(refused: \\[-6"):
        smartbus_client("net", user="u", password="wrong", timeout=0.5)


def test_5_unknown_kind(smartbus_client):
    with pytest.raises(ValueError, match="kind must be 'net' or 'ipc'"):
        smartbus_client("tcp")
'''

USER_CONFTEST = '''
import pytest


@pytest.fixture(scope="session")
def smartbus_net_unit():
    return 33
'''


def test_fixtures_tear_down_and_take_options(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_SUITE))
    (tmp_path / "conftest.py").write_text(textwrap.dedent(USER_CONFTEST))
    code, out = run_pytest(tmp_path, "-p", "no:randomly")
    assert code == 0, out
    assert "5 passed" in out, out


def test_the_plugin_can_be_turned_off(tmp_path):
    (tmp_path / "test_off.py").write_text("def test_x(smartbus_server):\n    pass\n")
    code, out = run_pytest(tmp_path, "-p", "no:smartbus")
    assert code == 1 and "fixture 'smartbus_server' not found" in out, out

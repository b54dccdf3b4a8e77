"""Type information for users: ``mypy --strict`` accepts the annotated
example program (examples/typed_client.py) and rejects wrong uses of the
API, the stub of the extension (smartbus/_native.pyi) matches the built
module (mypy's stubtest), and py.typed and the stub are shipped.

The command for CI, from the checkout's root:

    python -m mypy --strict examples/typed_client.py
"""

import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from helpers import TESTS_DIR, package_env

pytest.importorskip("mypy", reason="mypy is a test dependency (pip install -e '.[test]')")

CHECKOUT = os.path.dirname(TESTS_DIR)
EXAMPLE = os.path.join(CHECKOUT, "examples", "typed_client.py")
needs_example = pytest.mark.skipif(not os.path.isfile(EXAMPLE),
                                   reason="examples/ is not beside these tests")


def package_home():
    """The directory that holds the imported smartbus package."""
    import smartbus
    return os.path.dirname(os.path.dirname(os.path.abspath(smartbus.__file__)))


def mypy(*args, cwd):
    """Runs ``python -m mypy *args`` on the imported smartbus: the sources
    of a checkout or an in-place build (MYPYPATH), or an installed wheel as
    a user's mypy sees it (py.typed and the stub, from site-packages)."""
    home = package_home()
    env = package_env()
    if home not in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]):
        env["MYPYPATH"] = home
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@needs_example
def test_the_typed_example_passes_mypy_strict(tmp_path):
    r = mypy("mypy", "--strict", EXAMPLE, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


@needs_example
def test_the_typed_example_runs():
    r = subprocess.run([sys.executable, EXAMPLE], env=package_env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "echo: HELLO flow: [6.5]" in r.stdout


def test_mypy_rejects_wrong_uses_of_the_api(tmp_path):
    # the types are real (not Any): each line below is a mistake mypy must name
    bad = tmp_path / "bad.py"
    bad.write_text(textwrap.dedent("""\
        from smartbus.head import Head
        from smartbus.ipc import Client as IpcClient
        from smartbus.net import Client
        from smartbus.utils import b2s_recode

        c = Client.create(1, 11, "127.0.0.1", 8089)
        c.send_data(1, 3, 16, 1, 11, "text, not bytes")
        IpcClient.get().activate()
        n: int = c.wait_connected("soon")
        s: str = b2s_recode(None)
        Head().cmd = 5
        """))
    r = mypy("mypy", "--strict", str(bad), cwd=tmp_path)
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    expected = {7: 'Argument 6 to "send_data" of "NativeClient" has incompatible type "str"',
                # mypy spells the optional type X | None, or Optional[X] when it checks for 3.9
                8: 'Item "None" of "%s" has no attribute "activate"' % (
                    "Client | None" if sys.version_info >= (3, 10) else "Optional[Client]"),
                9: 'Argument 1 to "wait_connected" of "ClientAPI" has incompatible type "str"',
                10: 'Incompatible types in assignment (expression has type "None", variable '
                    'has type "str")',
                11: 'Property "cmd" defined in "Head" is read-only'}
    for line, message in expected.items():
        assert "bad.py:%d: error: %s" % (line, message) in out, out
    assert "Found %d errors" % len(expected) in out, out


def test_the_stub_matches_the_extension(tmp_path):
    allowlist = os.path.join(TESTS_DIR, "native_stub_allowlist.txt")
    # disjoint bases (PEP 800) are left unmarked: type checkers older than
    # mypy 1.18 would not read the stub at all
    r = mypy("mypy.stubtest", "--ignore-disjoint-bases", "--allowlist", allowlist,
             "smartbus._native", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_type_information_is_shipped():
    """py.typed and the stub sit in the imported package: run against an
    installed wheel (.ci/wheels runs the suite so), this checks what the
    wheel ships."""
    import smartbus
    package = os.path.dirname(os.path.abspath(smartbus.__file__))
    for name in ("py.typed", "_native.pyi"):
        assert os.path.isfile(os.path.join(package, name)), name

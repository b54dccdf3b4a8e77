"""The C SDK as C code: it compiles as C99 with -Wall -Wextra -Werror
-pedantic, and C programs using the vendor-compatible SmartBusNetCli_* and
SmartBusIpcCli_* APIs (built with AddressSanitizer, UBSan and
LeakSanitizer) talk to a peer through the real router.  The SDK's sources
come with a checkout (or $SMARTBUS_SDK_DIR), not with an installed wheel:
without them these tests are skipped."""

import glob
import os
import subprocess

import pytest

from helpers import TESTS_DIR, sdk_source_dir, start_net_peer, wait_for

SDK = sdk_source_dir()
pytestmark = pytest.mark.skipif(SDK is None, reason="the C SDK's sources are not at hand "
                                                    "(a checkout, or set SMARTBUS_SDK_DIR)")
SOURCES = sorted(glob.glob(os.path.join(SDK, "src", "*.c"))) if SDK else []
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-pthread",
          "-I" + os.path.join(SDK or "", "include"), "-I" + os.path.join(SDK or "", "src")]
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=undefined", "-g"]


def gcc(args, cwd):
    return subprocess.run(["gcc"] + args, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_sdk_compiles_strict_c99(tmp_path, opt):
    for src in SOURCES:
        r = gcc(STRICT + [opt, "-c", src, "-o", str(tmp_path / "x.o")], tmp_path)
        assert r.returncode == 0, "%s:\n%s" % (os.path.basename(src), r.stderr)


def build_c_test(tmp_path_factory, name):
    """tests/c/<name>.c linked with the SDK sources, strict and sanitized."""
    out = tmp_path_factory.mktemp("cbin") / name
    src = os.path.join(TESTS_DIR, "c", name + ".c")
    r = gcc(STRICT + SANITIZE + ["-O1", src] + SOURCES + ["-o", str(out)], TESTS_DIR)
    assert r.returncode == 0, r.stderr
    return str(out)


@pytest.fixture(scope="module")
def facade_test_binary(tmp_path_factory):
    return build_c_test(tmp_path_factory, "facade_test")


@pytest.fixture(scope="module")
def ipc_facade_test_binary(tmp_path_factory):
    return build_c_test(tmp_path_factory, "ipc_facade_test")


def run_c_client(peer, args, sender, sent_src):
    """Runs a C test program (LeakSanitizer on) until it reports CONNECTED;
    checks that what it sent reached the NET peer (an empty payload, then
    b"hello-from-" + its kind, from sent_src = [unit, client]); makes the
    peer send it 3 messages to `sender` = [unit, client, type] and lets it
    finish: it must print OK and exit 0 with a clean sanitizer report."""
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    env.pop("LD_PRELOAD", None)
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line == "CONNECTED", line + proc.stderr.read()
        got = peer.received(2)
        texts = [bytes.fromhex(d[5]) for d in got if d[:2] == [7, 3]]
        assert texts[0] == b"" and texts[1].startswith(b"hello-from-") and len(texts) == 2
        assert got[0][2:4] == sent_src
        for i in (1, 2, 3):
            assert peer.call(op="send_raw", cmd=1, cmd_type=3, dst=sender,
                             data=("reply-%d" % i).encode().hex())["ok"]
        out, err = proc.communicate("go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and out.strip() == "OK", out + err
    assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err
    return texts


def test_facade_from_c(router, peers, facade_test_binary):
    peer = start_net_peer(peers, router, 16)
    texts = run_c_client(peer, [facade_test_binary, str(router.port), "16"],
                         sender=[21, 1, 11], sent_src=[21, 1])
    assert texts == [b"", b"hello-from-c"]


def test_ipc_facade_from_c(router, peers, ipc_facade_test_binary):
    """SmartBusIpcCli_* from C over the router's private Unix socket: the IPC
    client (type 3, id 5) takes the router's unit 0; the NET peer hears of
    its arrival and, after Release, of its departure."""
    peer = start_net_peer(peers, router, 16)
    texts = run_c_client(peer, [ipc_facade_test_binary, router.ipc_path, "16"],
                         sender=[0, 5, 3], sent_src=[0, 5])
    assert texts == [b"", b"hello-from-ipc"]
    arrivals = [e for e in peer.events("global") if e[:3] == [0, 5, 3]]
    assert [e[3:] for e in arrivals[:1]] == [[0, 1, "c-ipc-facade"]]
    left = wait_for(lambda: [e for e in peer.events("global")
                             if e[:3] == [0, 5, 3] and e[4] == 0], 5)
    assert left == [[0, 5, 3, 0, 0, "c-ipc-facade"]]

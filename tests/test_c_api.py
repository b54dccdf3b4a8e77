"""The C SDK as C code: it compiles as C99 with -Wall -Wextra -Werror
-pedantic, and a C program using the vendor-compatible SmartBusNetCli_* API
(built with AddressSanitizer, UBSan and LeakSanitizer) talks to a peer
through the real router.  The SDK's sources come with a checkout (or
$SMARTBUS_SDK_DIR), not with an installed wheel: without them these tests
are skipped."""

import glob
import os
import subprocess

import pytest

from helpers import TESTS_DIR, sdk_source_dir, start_net_peer

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


@pytest.fixture(scope="module")
def facade_test_binary(tmp_path_factory):
    out = tmp_path_factory.mktemp("cbin") / "facade_test"
    src = os.path.join(TESTS_DIR, "c", "facade_test.c")
    r = gcc(STRICT + SANITIZE + ["-O1", src] + SOURCES + ["-o", str(out)], TESTS_DIR)
    assert r.returncode == 0, r.stderr
    return str(out)


def test_facade_from_c(router, peers, facade_test_binary):
    peer = start_net_peer(peers, router, 16)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    env.pop("LD_PRELOAD", None)
    proc = subprocess.Popen([facade_test_binary, str(router.port), "16"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line == "CONNECTED", line + proc.stderr.read()
        # what the C program sent reached the peer: an empty payload, then text
        got = peer.received(2)
        assert [bytes.fromhex(d[5]) for d in got if d[:2] == [7, 3]] == [b"", b"hello-from-c"]
        assert got[0][2:4] == [21, 1]
        for i in (1, 2, 3):
            assert peer.call(op="send_raw", cmd=1, cmd_type=3, dst=[21, 1, 11],
                             data=("reply-%d" % i).encode().hex())["ok"]
        out, err = proc.communicate("go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and out.strip() == "OK", out + err
    assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err

"""The C SDK as C code: it compiles as C99 with -Wall -Wextra -Werror
-pedantic, with its Linux fast paths and without them (-DSB_PORTABLE), by
gcc and clang, and for macOS (arm64 and x86_64, by zig's clang with its
macOS headers, at the wheels' deployment targets); C programs using the
vendor-compatible SmartBusNetCli_* and SmartBusIpcCli_* APIs (built with
AddressSanitizer, UBSan and LeakSanitizer) talk to a peer through the real
router; the sink's bounded wait holds in both builds.  The SDK's sources
come with a checkout (or $SMARTBUS_SDK_DIR), not with an installed wheel:
without them these tests are skipped, as are the compilers that are not
installed (zig: PyPI ziglang in this Python, or $SMARTBUS_ZIG, a command
such as "/path/to/python -m ziglang")."""

import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys

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


def find_clang():
    """clang, or the newest clang-N (Debian installs it versioned)."""
    versioned = [os.path.basename(p) for d in os.get_exec_path()
                 for p in glob.glob(os.path.join(d, "clang-[0-9]*"))
                 if re.fullmatch(r"clang-\d+", os.path.basename(p))]
    newest = max(versioned, key=lambda n: int(n.split("-")[1]), default=None)
    return shutil.which("clang") or newest


def find_zig_cc():
    if os.environ.get("SMARTBUS_ZIG"):
        return shlex.split(os.environ["SMARTBUS_ZIG"]) + ["cc"]
    if importlib.util.find_spec("ziglang"):
        return [sys.executable, "-m", "ziglang", "cc"]
    return None


def compiler(name):
    """The command line of a compiler by name, or None when it is missing.
    The macOS targets are the oldest systems the wheels claim (cibuildwheel:
    11.0 on arm64; 10.13 on x86_64, pyproject.toml): an API newer than that
    is an error (-Wunguarded-availability with -Werror)."""
    if name == "gcc":
        return ["gcc"] if shutil.which("gcc") else None
    if name == "clang":
        clang = find_clang()
        return [clang] if clang else None
    zig = find_zig_cc()
    target = {"macos-arm64": "aarch64-macos.11.0", "macos-x86_64": "x86_64-macos.10.13"}[name]
    return zig and zig + ["-target", target, "-Wunguarded-availability"]


@pytest.mark.parametrize("name, opt, mode", [
    ("gcc", "-O0", ""), ("gcc", "-O2", ""), ("gcc", "-O2", "-DSB_PORTABLE"),
    ("clang", "-O2", ""), ("clang", "-O2", "-DSB_PORTABLE"),
    ("macos-arm64", "-O2", ""), ("macos-x86_64", "-O2", ""),
])
def test_sdk_compiles_strict_c99(tmp_path, name, opt, mode):
    cc = compiler(name)
    if cc is None:
        pytest.skip("%s is not installed" % (name if name in ("gcc", "clang") else
                                             "zig (PyPI ziglang, or $SMARTBUS_ZIG)"))
    for src in SOURCES:             # one at a time: zig cc compiles one input per -c
        obj = tmp_path / (os.path.basename(src)[:-2] + ".o")
        r = subprocess.run(cc + STRICT + [opt] + ([mode] if mode else []) +
                           ["-c", src, "-o", str(obj)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and not r.stderr, "%s:\n%s" % (os.path.basename(src), r.stderr)
        assert obj.stat().st_size > 0, obj


def test_sdk_sources_include_platform_h_first():
    """src/platform.h sets the feature-test macros, which count only when
    they come before every system header."""
    for src in SOURCES:
        with open(src, encoding="utf-8") as f:
            first = next(line for line in f if line.startswith("#include"))
        assert first.strip() == '#include "platform.h"', os.path.basename(src)


def build_c_test(tmp_path_factory, name, *flags):
    """tests/c/<name>.c linked with the SDK sources, strict and sanitized."""
    out = tmp_path_factory.mktemp("cbin") / name
    src = os.path.join(TESTS_DIR, "c", name + ".c")
    r = gcc(STRICT + SANITIZE + list(flags) + ["-O1", src] + SOURCES + ["-o", str(out)],
            TESTS_DIR)
    assert r.returncode == 0, r.stderr
    return str(out)


def sanitized_env():
    """The environment of a C test program: LeakSanitizer on, and none of
    .ci/sanitize's preloaded runtimes (the program links its own)."""
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    env.pop("LD_PRELOAD", None)
    return env


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
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=sanitized_env())
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


@pytest.mark.parametrize("mode", ["", "-DSB_PORTABLE"])
def test_sink_free_waits_as_long_as_asked(tmp_path_factory, mode):
    """smartbus_sink_free joins a callback thread that ends in time and gives
    up on a stuck one at its timeout (tests/c/sink_wait_test.c), with the
    monotonic condition variable and with the portable fallback."""
    binary = build_c_test(tmp_path_factory, "sink_wait_test", *([mode] if mode else []))
    r = subprocess.run([binary], capture_output=True, text=True, env=sanitized_env(), timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stdout + r.stderr
    assert "ERROR: AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr


def run_c_test_with(tmp_path_factory, name, sanitizer, *args, timeout=600):
    """tests/c/<name>.c built with -fsanitize=<sanitizer> (skipped when the
    runtime is missing) and run with args: returns its stdout, after
    checking that it succeeded with a clean sanitizer report."""
    flags = ["-fsanitize=" + sanitizer, "-fno-omit-frame-pointer", "-g", "-O1"]
    out = tmp_path_factory.mktemp("cbin") / (name + "_" + sanitizer.split(",")[0])
    src = os.path.join(TESTS_DIR, "c", name + ".c")
    r = gcc(STRICT + flags + [src] + SOURCES + ["-o", str(out)], TESTS_DIR)
    if sanitizer == "thread" and r.returncode != 0 and "tsan" in r.stderr:
        pytest.skip("no ThreadSanitizer runtime: " + r.stderr[-200:])
    assert r.returncode == 0, r.stderr
    env = dict(sanitized_env(), TSAN_OPTIONS="halt_on_error=1")
    r = subprocess.run([str(out)] + list(args), capture_output=True, text=True, env=env,
                       timeout=timeout)
    assert r.returncode == 0 and r.stdout.startswith("OK"), r.stdout + r.stderr
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r.stdout


@pytest.mark.parametrize("sanitizer", ["address,undefined", "thread"])
def test_several_threads_send_on_one_client_from_c(tmp_path_factory, sanitizer):
    """tests/c/send_stress_test.c: 3 threads x 20,000 messages (data and
    pings, the last pings 3 ms apart so that some are written directly on
    the idle link) on one client, through a router in the same process:
    every message arrives in its thread's order, every ping is answered;
    clean under ASan/UBSan and under ThreadSanitizer (the send queue's two
    halves and the direct-write token are data-race free)."""
    out = run_c_test_with(tmp_path_factory, "send_stress_test", sanitizer, "20000")
    assert int(out.split()[1]) > 0          # some pings were written directly


@pytest.mark.parametrize("sanitizer", ["address,undefined", "thread"])
def test_inline_sink_callbacks_run_on_the_io_thread(tmp_path_factory, sanitizer):
    """tests/c/inline_sink_test.c: an inline sink's callback runs on the I/O
    thread (one thread for two sinks, not the caller's): 20,000 messages in
    order, in batches of at most 256, a count-0 call after each read's
    events only; 2,000 pings each sent from the callback that got the
    previous answer; from a callback, smartbus_client_start while the main
    thread waits in smartbus_client_free, and smartbus_sink_free(-1) of a
    callback thread that waits in smartbus_client_free, neither deadlocks;
    a callback frees its clients (the last ones: the I/O thread ends, the
    next client gets a new one) and its own sink (count -1 after it).
    Clean under ASan/UBSan (LeakSanitizer on) and ThreadSanitizer."""
    assert run_c_test_with(tmp_path_factory, "inline_sink_test", sanitizer,
                           timeout=120).strip() == "OK"


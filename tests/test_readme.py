"""Every Python example of README.md runs as written: each code block, in a
process of its own, against ``python -m smartbus.server`` started for the
test.  The examples say 127.0.0.1:8089 and the default IPC socket; the only
change made to them is that port (the router here listens on a free one),
and the IPC path comes from $SMARTBUS_IPC_PATH, as for any program."""

import os
import re
import subprocess
import sys

import pytest

from helpers import TESTS_DIR, package_env

README = os.path.join(os.path.dirname(TESTS_DIR), "README.md")
DOCUMENTED_PORT = "8089"


def python_blocks():
    """(line number, code) of every ```python block of the README but the
    pytest files it shows (first line ``# test_*.py``: tests/test_plugin.py
    runs those with pytest)."""
    if not os.path.isfile(README):
        return []
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)
            if not re.match(r"# test_\w+\.py\n", m.group(1))]


BLOCKS = python_blocks()


@pytest.mark.skipif(not BLOCKS, reason="README.md is not beside these tests")
def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 3, BLOCKS
    assert any(DOCUMENTED_PORT in code for _, code in BLOCKS)


@pytest.mark.parametrize("line, code", BLOCKS, ids=["README.md:%d" % b[0] for b in BLOCKS])
def test_readme_example_runs(line, code, server_process, short_tmp):
    ipc_path = os.path.join(short_tmp, "ipc")
    server = server_process("--port", 0, "--ipc-path", ipc_path)
    server.wait_ready()
    program = re.sub(r"\b%s\b" % DOCUMENTED_PORT, str(server.port), code)
    r = subprocess.run([sys.executable, "-c", program], cwd=short_tmp,
                       env=package_env(SMARTBUS_IPC_PATH=ipc_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, \
        "README.md:%d exited %d:\n%s%s" % (line, r.returncode, r.stdout, r.stderr)
    assert r.stdout.strip(), "README.md:%d printed nothing" % line

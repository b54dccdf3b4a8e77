"""Every Python example of the documentation (README.md and the pages of
the docs site: docs/*.md, benchmarks/README.md) runs as written: each code
block, in a process of its own, against ``python -m smartbus.server``
started for the test.  The examples say 127.0.0.1:8089 and the default IPC
socket; the only change made to them is that port (the router here listens
on a free one), and the IPC path comes from $SMARTBUS_IPC_PATH, as for any
program.  A block that starts by naming a test file (``# test_name.py``) is
a pytest file, not a program: pytest runs those (tests/test_plugin.py)."""

import glob
import os
import re
import subprocess
import sys

import pytest

from helpers import TESTS_DIR, package_env

ROOT = os.path.dirname(TESTS_DIR)
README = os.path.join(ROOT, "README.md")
DOCUMENTED_PORT = "8089"
#: the documents whose examples run
DOCUMENTS = [README, *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))),
             os.path.join(ROOT, "benchmarks", "README.md")]
PYTEST_FILE = re.compile(r"# test_\w+\.py\n")


def python_blocks(path):
    """(line number, code) of every ```python block of the Markdown file
    ``path`` that is a program (none if there is no such file)."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)
            if not PYTEST_FILE.match(m.group(1))]


BLOCKS = [(os.path.relpath(path, ROOT), line, code)
          for path in DOCUMENTS for line, code in python_blocks(path)]
README_BLOCKS = python_blocks(README)


@pytest.mark.skipif(not README_BLOCKS, reason="README.md is not beside these tests")
def test_the_readme_has_its_examples():
    assert len(README_BLOCKS) >= 3, README_BLOCKS
    assert any(DOCUMENTED_PORT in code for _, code in README_BLOCKS)


@pytest.mark.parametrize("doc, line, code", BLOCKS, ids=["%s:%d" % b[:2] for b in BLOCKS])
def test_example_runs(doc, line, code, server_process, short_tmp):
    ipc_path = os.path.join(short_tmp, "ipc")
    server = server_process("--port", 0, "--ipc-path", ipc_path)
    server.wait_ready()
    program = re.sub(r"\b%s\b" % DOCUMENTED_PORT, str(server.port), code)
    r = subprocess.run([sys.executable, "-c", program], cwd=short_tmp,
                       env=package_env(SMARTBUS_IPC_PATH=ipc_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, \
        "%s:%d exited %d:\n%s%s" % (doc, line, r.returncode, r.stdout, r.stderr)
    assert r.stdout.strip(), "%s:%d printed nothing" % (doc, line)

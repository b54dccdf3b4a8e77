"""One source for the error codes: the list in the C header smartbus.h.
``smartbus.errors`` (its literal SMARTBUS_ERR_* constants, error_code_message
and the descriptions in exception messages) must equal the SDK's table
exactly, whichever of the two modules is imported first."""

import glob
import os
import re
import subprocess
import sys

import pytest

from helpers import package_env, sdk_source_dir

from smartbus import _native, errors

TABLE = _native.sdk_error_table()
SDK_ONLY = {"SMARTBUS_ERR_WOULDBLOCK"}    # smartbus_ext.h: never leaves the SDK's callers


def test_table_is_well_formed():
    codes = [code for code, _, _ in TABLE]
    names = [name for _, name, _ in TABLE]
    assert len(set(codes)) == len(codes) and len(set(names)) == len(names)
    assert all(name.startswith("SMARTBUS_ERR_") for name in names)
    assert all(text and text == text.strip() for _, _, text in TABLE)
    assert (0, "SMARTBUS_ERR_OK", "no error") in TABLE
    assert codes == sorted(codes, reverse=True)            # the header's order: 0, -1, ... -99


@pytest.mark.skipif(sdk_source_dir() is None, reason="the C SDK's headers are not at hand "
                                                   "(a checkout, or set SMARTBUS_SDK_DIR)")
def test_every_code_named_in_the_headers_is_in_the_table():
    names = {name for _, name, _ in TABLE}
    mentioned = set()
    for header in glob.glob(os.path.join(sdk_source_dir(), "include", "*.h")):
        with open(header, encoding="utf-8") as f:
            mentioned |= set(re.findall(r"\bSMARTBUS_ERR_[A-Z_]+\b", f.read()))
    assert mentioned - SDK_ONLY == names


def test_errors_constants_equal_the_table():
    python_names = {n: v for n, v in vars(errors).items() if n.startswith("SMARTBUS_ERR_")}
    assert python_names == {name: code for code, name, _ in TABLE}


def test_error_code_message_equals_the_table():
    assert errors.error_code_message == {code: name for code, name, _ in TABLE if code != 0}


@pytest.mark.parametrize("code,name,text", [row for row in TABLE if row[0] != 0])
def test_exception_messages_use_the_table(code, name, text):
    exc = errors.SmartBusError(code)
    assert (exc.code, exc.message) == (code, name)
    assert str(exc) == "smartbus error %d (%s): %s" % (code, name, text)


def test_unknown_code_has_no_description():
    assert str(errors.SmartBusError(-1234)) == "smartbus error -1234 (UNDEFINED_ERROR)"


@pytest.mark.parametrize("first", ["smartbus.errors", "smartbus._native", "smartbus"])
def test_either_import_order_works(first):
    # smartbus.errors reads the table from the binding, which imports smartbus.errors
    code = ("import %s, smartbus.errors as e; print(e.SmartBusError(-7))" % first)
    r = subprocess.run([sys.executable, "-c", code], env=package_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("smartbus error -7 (SMARTBUS_ERR_BUFF_FULL): "
                                "send queue or table full")

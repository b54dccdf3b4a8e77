"""SmartBus error codes and exceptions (drop-in for ``smartbus.errors``).

Every SDK call that fails raises :class:`SmartBusError` carrying the SDK's
error code (a negative ``SMARTBUS_ERR_*`` value).  The other exceptions are
instances of the built-in class the old ctypes package raised in the same
case (``RuntimeError``, ``KeyError``), so ``except`` clauses written for it
still catch them.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "SmartBusError", "check", "error_code_message",
    "AlreadyInitializedError", "NotInitializedError", "AlreadyExistsError",
    "InvokeFlowIdError",
]

SMARTBUS_ERR_OK = 0
SMARTBUS_ERR_ARGUMENT = -1
SMARTBUS_ERR_CONN_NOT_ESTAB = -2
SMARTBUS_ERR_CONNECT_BREAK = -3
SMARTBUS_ERR_AUTHOR = -4
SMARTBUS_ERR_USER = -5
SMARTBUS_ERR_PWD = -6
SMARTBUS_ERR_BUFF_FULL = -7
SMARTBUS_ERR_NODE_NOTEXIST = -8
SMARTBUS_ERR_CLI_NOTEXIST = -9
SMARTBUS_ERR_CONNECTED = -10
SMARTBUS_ERR_SEND_OWN = -11
SMARTBUS_ERR_UNITID_INVALID = -12
SMARTBUS_ERR_CLIENTID_INVALID = -13
SMARTBUS_ERR_NON_INIT = -14
SMARTBUS_ERR_MAX_DATASIZE = -15
SMARTBUS_ERR_CMDTYPE_INVALID = -16
SMARTBUS_ERR_CLIENTTYPE_INVALID = -17
SMARTBUS_ERR_SEND_DATA = -18
SMARTBUS_ERR_MEM_ALLOC = -19
SMARTBUS_ERR_ESTABLI_CONNECT = -20
SMARTBUS_ERR_CLI_TOOMANY = -21
SMARTBUS_ERR_CLI_EXIST = -22
SMARTBUS_ERR_DEST_NONEXIST = -23
SMARTBUS_ERR_REGISTERED_REPEAT = -24
SMARTBUS_ERR_TIMEOUT = -25
SMARTBUS_ERR_OTHER = -99

#: error code -> its SDK name
error_code_message: dict[int, str] = {
    value: name for name, value in globals().items()
    if name.startswith("SMARTBUS_ERR_") and value != 0
}
# ``from smartbus.errors import *`` gave the code constants too (the old
# module had no __all__)
__all__ += ["SMARTBUS_ERR_OK"] + sorted(error_code_message.values())

#: what each code means, for exception messages: from the SDK's table
#: (smartbus.h), filled in at the end of this module
_descriptions: dict[int, str] = {}


class SmartBusError(Exception):
    """An SDK call failed; ``code`` is the SDK error code, ``message`` its name."""

    def __init__(self, code: int, message: Optional[str] = None) -> None:
        code = int(code)
        if message is None:
            message = error_code_message.get(code, "UNDEFINED_ERROR")
        self._code = code
        self._message = message
        detail = _descriptions.get(code)
        text = "smartbus error %d (%s)" % (code, message)
        super().__init__(text + (": " + detail if detail else ""))

    @property
    def code(self) -> int:
        """The SDK error code (negative)."""
        return self._code

    @property
    def message(self) -> str:
        """The error code's name, e.g. ``'SMARTBUS_ERR_BUFF_FULL'``."""
        return self._message

    def __reduce__(self) -> "tuple[object, ...]":
        return (type(self), (self._code, self._message))


def check(code: int, raise_if_err: bool = True) -> Optional[SmartBusError]:
    """Returns None for code 0; otherwise raises (or, with
    ``raise_if_err=False``, returns) a :class:`SmartBusError` for it."""
    code = int(code)
    if code == SMARTBUS_ERR_OK:
        return None
    exc = SmartBusError(code)
    if raise_if_err:
        raise exc
    return exc


class AlreadyInitializedError(RuntimeError):
    """``smartbus.net.Client.initialize`` was called twice (the old package
    raised RuntimeError)."""


class NotInitializedError(RuntimeError):
    """The library must be initialised first: a NET client made before
    ``Client.initialize`` (the old package raised RuntimeError)."""


class AlreadyExistsError(KeyError, RuntimeError):
    """An object with that identity exists already: a NET client with the
    same local client id (the old package raised KeyError), or a second IPC
    client in the process (it raised RuntimeError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvokeFlowIdError(Exception):
    """A flow answer carried an invoke id that matches no pending call."""


def _sdk_descriptions() -> dict[int, str]:
    # imported here, last: the binding imports this module (SmartBusError,
    # check) while it is being imported itself
    from smartbus._native import sdk_error_table
    return {code: text for code, _name, text in sdk_error_table() if code != SMARTBUS_ERR_OK}


_descriptions.update(_sdk_descriptions())


# ---- the asyncio client's flow outcomes (smartbus.aio) ------------------------------

class FlowError(SmartBusError):
    """A flow started with ``smartbus.aio``'s ``launch_flow`` failed: ``code``
    is the error code (from the SDK or the IPSC), ``project_id`` and
    ``invoke_id`` name the call, ``detail`` is the IPSC's message if it sent one."""

    def __init__(self, code: int, project_id: str, invoke_id: int,
                 detail: "str | None" = None) -> None:
        super().__init__(code)
        self.project_id = project_id
        self.invoke_id = invoke_id
        self.detail = detail
        self.args = ("flow of project %r, invoke %d: %s%s" % (
            project_id, invoke_id, self.args[0], " (%s)" % detail if detail else ""),)

    def __reduce__(self) -> "tuple[object, ...]":
        return (type(self), (self.code, self.project_id, self.invoke_id, self.detail))


class FlowTimeout(FlowError):
    """No flow result within the call's timeout (``code`` is
    ``SMARTBUS_ERR_TIMEOUT``, -25)."""

    def __init__(self, project_id: str, invoke_id: int, detail: "str | None" = None) -> None:
        super().__init__(SMARTBUS_ERR_TIMEOUT, project_id, invoke_id, detail)

    def __reduce__(self) -> "tuple[object, ...]":
        return (type(self), (self.project_id, self.invoke_id, self.detail))


__all__ += ["FlowError", "FlowTimeout"]

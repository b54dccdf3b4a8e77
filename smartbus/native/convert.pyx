# Part of smartbus._native: conversions between Python values and the C
# SDK's, shared by the other parts.

from smartbus.errors import check


cdef object _error(int code):
    """The SmartBusError for an SDK error code (to raise)."""
    return check(code, raise_if_err=False)


cdef inline bytes _opt_bytes(s, str name, encoding="utf-8"):
    """None, or a str/bytes argument as bytes for a C string."""
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    if isinstance(s, str):
        return (<str>s).encode(encoding)
    raise TypeError("%s must be str or bytes, not %s" % (name, type(s).__name__))

# Part of smartbus._native: Head, the read-only view of a received packet
# head that every event carrying a head passes to Python.

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t

cimport cython


# the signature line is written by hand, in the form CPython reads into
# __text_signature__ (so that inspect.signature(Head) works): Cython embeds
# signatures for functions, not for the constructor of an extension type
# a free list: a burst of events makes and drops up to a batch of heads at a
# time (on_data_batch gets 256 at once), and reusing them saves the
# allocator's work on every message (callgrind: ~100 instructions each)
@cython.embedsignature(False)
@cython.freelist(256)
cdef class Head:
    """Head(raw=None)\n--\n\nRead-only view of a received packet head (the 20-byte SmartBus head).

    ``Head(raw)`` decodes 20 (or more) bytes; the SDK passes one with every
    event that carries a head.
    """

    def __init__(self, raw=None):
        cdef Py_buffer view
        if raw is None:
            self._reserved[0] = 0
            self._reserved[1] = 0
            return
        PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE)
        try:
            if view.len < SMARTBUS_PACKET_HEAD_SIZE:
                raise ValueError("a packet head needs 20 bytes, got %d" % view.len)
            _fill_head(self, <const unsigned char *>view.buf)
        finally:
            PyBuffer_Release(&view)

    @staticmethod
    cdef Head from_raw(const unsigned char *p):
        cdef Head h = Head.__new__(Head)
        _fill_head(h, p)
        return h

    def __repr__(self):
        return ("<smartbus.head.Head cmd=%d, cmd_type=%d, src_unit_client_type=%d, "
                "src_unit_id=%d, src_unit_client_id=%d, dst_unit_client_type=%d, "
                "dst_unit_id=%d, dst_unit_client_id=%d, packet_size=%d, data_length=%d>" % (
                    self.cmd, self.cmd_type, self.src_unit_client_type, self.src_unit_id,
                    self.src_unit_client_id, self.dst_unit_client_type, self.dst_unit_id,
                    self.dst_unit_client_id, self.packet_size, self.data_length))

    def __eq__(self, other):
        if not isinstance(other, Head):
            return NotImplemented
        return self._key() == (<Head>other)._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return (self.cmd, self.cmd_type, self.src_unit_client_type, self.src_unit_id,
                self.src_unit_client_id, self.dst_unit_client_type, self.dst_unit_id,
                self.dst_unit_client_id, self.packet_size, self.data_length)

    @property
    def reserved(self):
        """The two reserved head bytes as received."""
        return PyBytes_FromStringAndSize(<const char *>self._reserved, 2)


cdef inline void _fill_head(Head h, const unsigned char *p):
    # fields as received, without validation (this is a view, not a parser)
    cdef sbw_head w
    sbw_read_head(p, &w)
    h.cmd = w.cmd
    h.cmd_type = w.cmdtype
    h.src_unit_client_type = w.src_type
    h.src_unit_id = w.src_unit
    h.src_unit_client_id = w.src_client
    h.dst_unit_client_type = w.dst_type
    h.dst_unit_id = w.dst_unit
    h.dst_unit_client_id = w.dst_client
    h._reserved[0] = w.reserved[0]
    h._reserved[1] = w.reserved[1]
    h.packet_size = w.packet_size
    h.data_length = w.datalen

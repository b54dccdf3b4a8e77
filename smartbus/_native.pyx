# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The binding to the bundled SmartBus C SDK: one extension module, built
from one part per concept (smartbus/native/, included in this order):

- ``constants.pxi``: values shared with the C SDK (IPC path, unit ranges...).
- ``convert.pxi``: Python <-> C conversions shared by the parts.
- ``head.pxi``: ``Head``, the view of a received packet head.
- ``events.pxi``: ``EventSink``: receives the SDK's events on the SDK's
  callback thread in batches (the GIL taken once per burst, see
  ``gil.h``) and runs the handlers (or hands them to the client's
  ``event_executor``); the atexit shutdown.
- ``client.pxi``: ``NativeClient``, the native half of the NET and IPC
  clients (``send_data``, ``ping``, ``send_many``, flows): arguments are
  converted to C types and the SDK call runs with the GIL released.
- ``router.pxi``: ``Router``, the local SmartBus server (run by
  ``smartbus.server``).
- ``codec.pxi``: the wire codec (``decode_packet`` / ``encode_packet`` for
  tools and tests, ``decode_invoke`` / ``decode_notify`` for the flow server).

The C declarations and the extension types' layouts are in _native.pxd.
"""

include "native/constants.pxi"
include "native/convert.pxi"
include "native/head.pxi"
include "native/events.pxi"
include "native/client.pxi"
include "native/router.pxi"
include "native/codec.pxi"

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: freethreading_compatible=True
"""The binding to the bundled SmartBus C SDK: one extension module, built
from one part per concept.  The parts in smartbus/native/ are not modules
of their own: each is included here, as text, in this order:

- ``constants.pyx``: values shared with the C SDK (IPC path, unit ranges...).
- ``convert.pyx``: Python <-> C conversions shared by the parts.
- ``head.pyx``: ``Head``, the view of a received packet head.
- ``events.pyx``: ``EventSink``: receives the SDK's events on the SDK's
  callback thread in batches (the GIL taken once per burst, see
  ``gil.h``) and runs the handlers (or hands them to the client's
  ``event_executor``); the atexit shutdown.
- ``client.pyx``: ``NativeClient``, the native half of the NET and IPC
  clients (``send_data``, ``ping``, ``send_many``, flows): arguments are
  converted to C types and the SDK call runs with the GIL released.
- ``router.pyx``: ``Router``, the local SmartBus server (run by
  ``smartbus.server``).
- ``codec.pyx``: the wire codec (``decode_packet`` / ``encode_packet`` for
  tools and tests, ``decode_invoke`` / ``decode_notify`` for the flow server).

The C declarations and the extension types' layouts are in _native.pxd.
"""

include "native/constants.pyx"
include "native/convert.pyx"
include "native/head.pyx"
include "native/events.pyx"
include "native/client.pyx"
include "native/router.pyx"
include "native/codec.pyx"

"""The packet head of received events (drop-in for ``smartbus.head``).

:class:`Head` is implemented in the native module: read-only ``int``
properties ``cmd``, ``cmd_type``, ``src_unit_client_type``, ``src_unit_id``,
``src_unit_client_id``, ``dst_unit_client_type``, ``dst_unit_id``,
``dst_unit_client_id``, ``packet_size`` and ``data_length``.
"""

from smartbus._native import Head

__all__ = ["Head"]

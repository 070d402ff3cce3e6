"""``streamlab serve``: the broker behind the Kafka wire protocol.

``app`` is the asyncio TCP listener and the server's lifecycle, ``connection`` one client
connection (framing, request order, memory), ``dispatch`` a request's way to its handler;
``handlers`` has one module per Kafka API; ``context`` is what handlers share. This is
another front on the broker services, beside the client API: it uses ``streamlab.broker``
and ``streamlab.protocol`` only.
"""

from streamlab.server.app import KafkaServer, run, serve
from streamlab.server.context import ConnectionInfo, ServerContext

__all__ = ["ConnectionInfo", "KafkaServer", "ServerContext", "run", "serve"]

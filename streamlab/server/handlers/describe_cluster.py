"""DescribeCluster: the cluster id, its one broker (also the controller), and what the principal may do.

``endpoint_type`` 1 (brokers) is the only kind served; 2 (controllers, KIP-919) is
UNSUPPORTED_ENDPOINT_TYPE as on a broker listener. Authorized operations on the cluster
are reported when asked (every operation while authorization is off).
"""

from __future__ import annotations

from typing import Any

from streamlab.protocol.framing import ParsedRequest
from streamlab.server.context import ConnectionInfo, ServerContext
from streamlab.server.handlers._authz import OMITTED, ResourceType, authorized_operations
from streamlab.server.responses import ZERO, build, error_code, types_for

API_KEY = 60

BROKERS_ENDPOINT = 1
UNSUPPORTED_ENDPOINT_TYPE = 120


async def handle(ctx: ServerContext, request: ParsedRequest, conn: ConnectionInfo) -> Any:
    body: Any = request.body
    t = types_for(API_KEY, request.api_version)
    endpoint = getattr(body, "endpoint_type", BROKERS_ENDPOINT)
    operations = OMITTED
    if body.include_cluster_authorized_operations:
        operations = authorized_operations(ctx, conn, ResourceType.CLUSTER, "")
    if endpoint != BROKERS_ENDPOINT:
        return build(t.DescribeClusterResponse, throttle_time=ZERO, error_code=error_code(UNSUPPORTED_ENDPOINT_TYPE),
                     error_message="this listener serves brokers (endpoint type 1) only", endpoint_type=endpoint,
                     cluster_id=ctx.cluster_id, controller_id=-1, brokers=(),
                     cluster_authorized_operations=OMITTED)  # fmt: skip
    broker = build(t.DescribeClusterBroker, broker_id=ctx.node_id, host=ctx.advertised_host,
                   port=ctx.advertised_port, rack=None, is_fenced=False)  # fmt: skip
    return build(
        t.DescribeClusterResponse,
        throttle_time=ZERO,
        error_code=error_code(0),
        error_message=None,
        endpoint_type=endpoint,
        cluster_id=ctx.cluster_id,
        controller_id=ctx.node_id,
        brokers=(broker,),
        cluster_authorized_operations=operations,
    )

"""``streamlab serve``: serve a data directory over the Kafka protocol until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from streamlab import DEFAULT_DIRECTORY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092; 0 picks one)")
    parser.add_argument(
        "--advertised-host",
        metavar="H",
        help="host name clients must use to reach this broker (default: --host, or this machine's name for 0.0.0.0)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run(args: argparse.Namespace) -> int:
    data = args.data or os.environ.get("STREAMLAB_DATA") or DEFAULT_DIRECTORY
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from streamlab.server import serve  # the protocol stack loads only for this command

    serve(data, host=args.host, port=args.port, advertised_host=args.advertised_host)
    return 0

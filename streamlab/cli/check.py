"""``streamlab check [--repair]``: verify every file of a data directory and say what was found.

Exit status: 0 when everything is readable (or was repaired), 1 when damage remains.
"""

from __future__ import annotations

import argparse
import os
import warnings

from streamlab import DEFAULT_DIRECTORY
from streamlab.errors import RecoveryWarning


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repair",
        action="store_true",
        help="take damaged segments out of the logs (the files are kept under DIR/damaged/)",
    )


def run(args: argparse.Namespace) -> int:
    from streamlab.broker import Broker
    from streamlab.broker.check import check, repair

    data = args.data or os.environ.get("STREAMLAB_DATA") or DEFAULT_DIRECTORY
    if not os.path.isdir(data):
        print(f"streamlab: error: {data} is not a data directory", flush=True)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecoveryWarning)
        broker = Broker(data)
    try:
        for warning in caught:
            if issubclass(warning.category, RecoveryWarning):
                print(f"recovered: {warning.message}")
        report = check(broker)
        print(
            f"checked {report.partitions} partition(s), {report.segments} sealed segment(s), "
            f"{report.segment_bytes / 1e6:.1f} MB"
        )
        if not report.problems:
            print("ok: every record is readable")
            return 0
        for problem in report.problems:
            print(f"damaged: {problem}")
        if not args.repair:
            print(f"{len(report.problems)} problem(s); `streamlab check --repair` takes them out of the logs")
            return 1
        for line in repair(broker):
            print(f"repaired: {line}")
        left = check(broker).problems
        print("ok: the logs hold only readable records now" if not left else f"{len(left)} problem(s) left")
        return 1 if left else 0
    finally:
        broker.close()

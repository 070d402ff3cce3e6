"""``streamlab jobs setup DIR``: the Python environment streaming jobs run in.

Quix Streams pins confluent-kafka below 2.13 and streamlab's ``kafka://`` share consumers
need 2.16, so jobs get a virtual environment of their own (see :mod:`streamlab.front.jobs`).
"""

from __future__ import annotations

import argparse
from typing import Any

from streamlab.front.jobs import JOBS_PYTHON_ENV, QUIXSTREAMS, setup_jobs_python


def add_command(commands: Any) -> None:
    """Register ``jobs setup`` on the parser."""
    actions = commands.add_parser("jobs", help="the Python environment streaming jobs run in").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    text = f"create (or complete) a virtual environment for lab.start_job() with {QUIXSTREAMS} (needs PyPI)"
    sub = actions.add_parser("setup", help=text, description=text)
    sub.add_argument("directory", metavar="DIR", help="where the environment goes, e.g. .venv-jobs")
    sub.add_argument("--package", dest="packages", action="append", metavar="SPEC",
                     help=f"install this instead of {QUIXSTREAMS} (repeatable; pip's syntax)")  # fmt: skip
    sub.set_defaults(handler=setup)


def setup(args: argparse.Namespace) -> int:
    python = setup_jobs_python(args.directory, packages=args.packages or (QUIXSTREAMS,))
    print(f"jobs environment ready; point streamlab at it with:\n  export {JOBS_PYTHON_ENV}={python}")
    return 0

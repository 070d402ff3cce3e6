"""The ``streamlab`` command line: manage topics, produce, consume, replay and run the demo.

Run ``streamlab --help`` (or ``python -m streamlab.cli.main --help``) for the commands.
"""

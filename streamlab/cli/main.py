"""``streamlab``: topics, produce, consume, replay and demo from a shell.

Every command opens the embedded broker in ``--data DIR`` (default ``$STREAMLAB_DATA`` or
``./streamlab-data``). Errors print ``streamlab: error: ...`` on stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

import streamlab
from streamlab.cli import browse, check, demo, groups, serve
from streamlab.cli.arguments import offset_or_time, partition_list
from streamlab.config import RECORD_FORMATS
from streamlab.errors import StreamlabError, UnknownPartitionError, UnknownTopicError
from streamlab.model.limits import check_record_size, record_size
from streamlab.model.serde import encode
from streamlab.model.types import Record, TopicPartition
from streamlab.storage.lock import served

DEFAULT_DATA = "streamlab-data"
Handler = Callable[[argparse.Namespace], int]
Parser = argparse.ArgumentParser


class CliError(StreamlabError):
    """Something wrong with the command line or with the input it was given."""


def _with_lab(command: Callable[[streamlab.Lab, argparse.Namespace], int], *, read_only: bool = False) -> Handler:
    """Open the data directory for ``command``. A read-only command never creates one (a
    typo in ``--data`` is an error, not an empty broker), and when the directory is served
    by ``streamlab serve`` it goes through the server's ``kafka://`` address instead."""

    def handler(args: argparse.Namespace) -> int:
        target = str(args.data or os.environ.get("STREAMLAB_DATA") or DEFAULT_DATA)
        if target.startswith("kafka://"):  # a cluster (or a running `streamlab serve`)
            try:
                lab = streamlab.connect(target)
            except ModuleNotFoundError as exc:  # confluent-kafka missing: say what to install
                raise CliError(str(exc)) from None
            with lab:
                return command(lab, args)
        data = Path(target)
        if read_only and not (data / "catalog.duckdb").exists():
            raise CliError(
                f"no data directory at {data}; check --data (or $STREAMLAB_DATA), "
                "or create a topic there with `streamlab topics create NAME`"
            )
        address, registry = served(data) if data.is_dir() else (None, None)
        if address is None:
            with streamlab.connect(data) as lab:
                return command(lab, args)
        # the server's registry too, when it serves one: consume and replay decode through it
        print(f"streamlab: {data} is served by another process; using {address}"
              + (f" and its Schema Registry at {registry}" if registry else ""), file=sys.stderr)  # fmt: skip
        with streamlab.connect(address, schema_registry=registry) as lab:
            return command(lab, args)

    return handler


# topics ---------------------------------------------------------------------------------
def topics(lab: streamlab.Lab, args: argparse.Namespace) -> int:
    if args.action == "create":
        lab.create_topic(args.name, partitions=args.partitions, config=dict(args.config or []))
        print(f"created topic {args.name!r} with {args.partitions} partition(s)")
    elif args.action == "delete":
        lab.delete_topic(args.name)
        print(f"deleted topic {args.name!r}")
    elif args.action == "list":
        table = lab.topics()
        print(table.drop(columns="config").to_string(index=False) if len(table) else "no topics")
    else:  # describe
        offsets = lab.offsets(args.name)  # raises for an unknown topic
        table = lab.topics()
        row = table[table["name"] == args.name].iloc[0]
        print(f"topic:      {args.name}\npartitions: {row['partitions']}\nrecords:    {row['records']}")
        print(f"bytes:      {row['bytes']}\nconfig:")
        for key, value in sorted(row["config"].items()):
            print(f"  {key} = {value}")
        offsets["records"] = offsets["high_watermark"] - offsets["log_start_offset"]
        print(offsets.to_string(index=False))
    return 0


# produce --------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_input(text: str, fmt: str, key_field: str | None, key_separator: str | None) -> list[tuple[Any, Any]]:
    """(key, value) pairs from the input lines; blank lines are skipped. Raises on the first bad line."""
    out: list[tuple[Any, Any]] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line, key = raw.removesuffix("\r"), None
        if not line.strip():
            continue
        if key_separator is not None:
            key, found, line = line.partition(key_separator)
            if not found:
                raise CliError(f"line {number}: no key separator {key_separator!r}; nothing was sent")
        if fmt == "lines":
            out.append((key, line))
            continue
        try:
            value = json.loads(line, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise CliError(f"line {number}, column {exc.colno}: invalid JSON: {exc.msg}; nothing was sent") from None
        except ValueError as exc:
            raise CliError(f"line {number}: invalid JSON: {exc}; nothing was sent") from None
        if key_field is not None:
            if not isinstance(value, dict) or key_field not in value:
                raise CliError(f"line {number}: no field {key_field!r} in the JSON object; nothing was sent")
            key = value[key_field]
        out.append((key, value))
    return out


TABLE_FORMATS = ("csv", "jsonl", "parquet")


def read_frame(source: str | None, fmt: str) -> pd.DataFrame:
    """A CSV, JSON-lines or Parquet file (stdin for the text formats) as a DataFrame."""
    if fmt == "parquet":
        if source is None:
            raise CliError("--format parquet needs --file (Parquet cannot be read from stdin)")
        return pd.read_parquet(source)
    handle: Any = source if source is not None else sys.stdin
    try:
        return pd.read_csv(handle) if fmt == "csv" else pd.read_json(handle, lines=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise CliError(f"cannot read the {fmt} input: {exc}; nothing was sent") from None


def produce_frame(lab: streamlab.Lab, args: argparse.Namespace) -> int:
    """One record per row: the key from --key-field, the timestamp from --timestamp-field
    (epoch milliseconds, or a date-time text), the other columns as the JSON value."""
    if args.key_separator is not None:
        raise CliError(f"--key-separator is for --format lines; with --format {args.format} use --key-field")
    lab.offsets(args.topic)
    df = read_frame(args.file, args.format)
    for flag, column in (("--key-field", args.key_field), ("--timestamp-field", args.timestamp_field)):
        if column is not None and column not in df.columns:
            raise CliError(f"{flag} {column!r} is not a column; the columns are {list(map(str, df.columns))}")
    with lab.producer() as producer:
        stored = producer.send_many(args.topic, df, key=args.key_field, timestamp=args.timestamp_field,
                                    partition=args.partition, **_registry_formats(args))  # fmt: skip
    counts = Counter(int(p) for p in stored["partition"])
    spread = ", ".join(f"partition {p}: {n}" for p, n in sorted(counts.items()))
    print(f"produced {len(stored)} record(s) to {args.topic!r}" + (f" ({spread})" if spread else ""))
    return 0


def _schema_file(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read the schema file: {exc}") from None


def _registry_formats(args: argparse.Namespace) -> dict[str, Any]:
    """``--value-format``/``--schema`` and ``--key-format``/``--key-schema`` as the
    producers' keyword arguments (none when not given)."""
    if args.schema is not None and args.value_format is None:
        raise CliError("--schema is the schema of --value-format avro, jsonschema or protobuf; give --value-format too")
    if args.key_schema is not None and args.key_format is None:
        raise CliError("--key-schema is the schema of --key-format avro, jsonschema or protobuf; give --key-format too")
    out: dict[str, Any] = {}
    if args.value_format is not None:
        out.update(value_format=args.value_format, value_schema=_schema_file(args.schema))
    if args.key_format is not None:
        out.update(key_format=args.key_format, key_schema=_schema_file(args.key_schema))
    return out


def produce(lab: streamlab.Lab, args: argparse.Namespace) -> int:
    formats = _registry_formats(args)
    if args.format in TABLE_FORMATS:
        return produce_frame(lab, args)
    if args.timestamp_field is not None:
        raise CliError("--timestamp-field needs --format csv, jsonl or parquet")
    if args.key_field is not None and args.format != "json":
        raise CliError("--key-field needs --format json, csv, jsonl or parquet")
    lab.offsets(args.topic)  # the topic must exist before stdin is read; send() checks --partition
    text = Path(args.file).read_text(encoding="utf-8") if args.file else sys.stdin.read()
    records = parse_input(text, args.format, args.key_field, args.key_separator)
    table = lab.topics()
    limit = int(table[table["name"] == args.topic].iloc[0]["config"]["max.message.bytes"])
    for i, (key, value) in enumerate(records if not formats else ()):  # framed sizes: the producer checks them
        size = record_size(encode(key, what="key")[0], encode(value)[0])
        check_record_size(size, limit, topic=args.topic, what=f"record {i + 1} (nothing was sent)")
    with lab.producer() as producer:
        futures = [producer.send(args.topic, value=v, key=k, partition=args.partition, **formats) for k, v in records]
        producer.flush()
    counts = Counter(f.result().partition for f in futures)
    spread = ", ".join(f"partition {p}: {n}" for p, n in sorted(counts.items()))
    print(f"produced {len(futures)} record(s) to {args.topic!r}" + (f" ({spread})" if spread else ""))
    return 0


# consume --------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _header(value: bytes | None) -> str | None:
    try:
        return None if value is None else value.decode("utf-8")
    except UnicodeDecodeError:
        return _b64(value or b"")


def _json_default(obj: Any) -> Any:
    """What Avro and Protobuf decode to beyond JSON: times as ISO text, bytes as base64."""
    if isinstance(obj, bytes):
        return _b64(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)  # Decimal, UUID


def format_record(record: Record, fmt: str) -> str:
    if fmt == "value":
        value = record.value
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=_json_default)
    return json.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.time.isoformat(timespec="milliseconds"),
            "key": _b64(record.key) if isinstance(record.key, bytes) else record.key,
            "value": _b64(record.value) if isinstance(record.value, bytes) else record.value,
            "headers": {name: _header(v) for name, v in record.headers.items()},
        },
        ensure_ascii=False,
        default=_json_default,
    )


def consume(lab: streamlab.Lab, args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise CliError(f"--count must be at least 1, got {args.count}")
    if args.timeout < 0:
        raise CliError(f"--timeout must be >= 0, got {args.timeout}")
    reset = "earliest" if args.from_beginning else "latest"
    consumer = lab.consumer(None, group=args.group, auto_offset_reset=reset, enable_auto_commit=False,
                            key_format=args.key_format, value_format=args.value_format)  # fmt: skip
    seen = 0
    try:
        if args.partition is None:
            consumer.subscribe([args.topic])
        else:
            consumer.assign([TopicPartition(args.topic, args.partition)])
        while args.count is None or seen < args.count:
            limit = 500 if args.count is None else min(500, args.count - seen)
            records = consumer.poll(timeout=args.timeout, max_records=limit)
            if not records:
                break
            sys.stdout.write("".join(format_record(r, args.format) + "\n" for r in records))
            sys.stdout.flush()
            seen += len(records)
            if args.group is not None:
                consumer.commit()  # positions are right after the last printed record
    finally:
        consumer.close()
    print(f"consumed {seen} record(s) from {args.topic!r}", file=sys.stderr)
    return 0


# replay ---------------------------------------------------------------------------------
def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str) or (isinstance(value, float) and pd.isna(value)):
        return value
    if isinstance(value, bytes):
        return _b64(value)
    return json.dumps(value, ensure_ascii=False)


def portable(df: pd.DataFrame, *, binary_ok: bool) -> pd.DataFrame:
    """Object columns mixing types (str keys and int keys, dict values) as text, bytes as base64."""
    out = df.copy()
    for column in out.columns:
        kinds = {type(v) for v in out[column] if v is not None} if out[column].dtype == "object" else {str}
        if not (kinds <= {str} or (binary_ok and kinds <= {bytes})):
            out[column] = [_cell(v) for v in out[column]]
    return out


def write_table(df: pd.DataFrame, out: str) -> None:
    """Write ``df`` to a .parquet or .csv file (mixed columns as text, bytes as base64)."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise CliError(f"--out must end in .parquet or .csv, got {out!r}")
    table = portable(df, binary_ok=suffix == ".parquet")
    table.to_parquet(path, index=False) if suffix == ".parquet" else table.to_csv(path, index=False)
    print(f"wrote {len(df)} row(s) to {path}")


def replay(lab: streamlab.Lab, args: argparse.Namespace) -> int:
    if Path(args.out).suffix.lower() not in (".parquet", ".csv"):
        raise CliError(f"--out must end in .parquet or .csv, got {args.out!r}")
    df = lab.replay(args.topic, start=args.start, end=args.end, partitions=args.partitions,
                    key_format=args.key_format, value_format=args.value_format)  # fmt: skip
    write_table(df, args.out)
    return 0


# parser ---------------------------------------------------------------------------------
def _key_value(text: str) -> tuple[str, str]:
    key, found, value = text.partition("=")
    if not found or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def _read_formats(parser: Parser) -> None:
    """--key-format/--value-format of the commands that read: lab.replay's key_format=/value_format=."""
    for side in ("key", "value"):
        text = f"how {side}s are read (default: the topic's own, see lab.set_format; else auto)"
        parser.add_argument(f"--{side}-format", choices=RECORD_FORMATS, default=None, help=text)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)  # so --data also works after the command
    common.add_argument(
        "--data", metavar="DIR", default=argparse.SUPPRESS, help="broker directory, or kafka://HOST:PORT"
    )
    parser = argparse.ArgumentParser(prog="streamlab", description="A Kafka-like streaming workbench.")
    where = f"broker directory or kafka://HOST:PORT ($STREAMLAB_DATA, ./{DEFAULT_DATA})"
    parser.add_argument("--data", metavar="DIR", help=where)
    parser.add_argument("--version", action="version", version=f"streamlab {streamlab.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        parent: argparse._SubParsersAction[Parser], name: str, text: str, handler: Handler, topic: str = ""
    ) -> Parser:
        sub = parent.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(handler=handler)
        if topic:
            sub.add_argument(topic)
        return sub

    actions = commands.add_parser("topics", help="list, create, describe and delete topics").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(actions, "list", "list topics", _with_lab(topics, read_only=True))
    create = command(actions, "create", "create a topic", _with_lab(topics), "name")
    create.add_argument("--partitions", type=int, default=1, metavar="N", help="default 1")
    create.add_argument("--config", type=_key_value, nargs="+", action="extend", metavar="KEY=VALUE",
                        help="e.g. retention.ms=60000")  # fmt: skip
    command(actions, "describe", "config and per-partition offsets", _with_lab(topics, read_only=True), "name")
    command(actions, "delete", "delete a topic and its data", _with_lab(topics), "name")

    prod = command(commands, "produce", "send the lines of stdin or a file", _with_lab(produce), "topic")
    prod.add_argument("--file", metavar="F", help="read this file instead of stdin")
    prod.add_argument("--format", choices=["lines", "json", *TABLE_FORMATS], default="lines",
                      help="lines: a str value per line; json: a JSON value per line; "
                           "csv, jsonl, parquet: a record per row, the columns as a JSON object")  # fmt: skip
    prod.add_argument("--timestamp-field", metavar="COL",
                      help="timestamps from this column: epoch ms or date-time text (csv, jsonl, parquet)")  # fmt: skip
    keys = prod.add_mutually_exclusive_group()
    keys.add_argument("--key-field", metavar="FIELD", help="key = this field of each JSON object or row")
    keys.add_argument("--key-separator", metavar="SEP", help="split 'key<SEP>value' lines (like kcat -K)")
    prod.add_argument("--partition", type=int, metavar="N", help="send everything to this partition")
    prod.add_argument("--value-format", choices=["avro", "jsonschema", "protobuf"],
                      help="write values in Confluent's wire format, the schema registered under <topic>-value "
                           "in the directory's Schema Registry")  # fmt: skip
    prod.add_argument("--schema", metavar="FILE", help="the value schema (.avsc, a JSON Schema or a .proto); default: "
                      "derived from the columns (csv, jsonl, parquet) or the subject's latest version")  # fmt: skip
    prod.add_argument("--key-format", choices=["avro", "jsonschema", "protobuf"], help="as --value-format, for keys")
    prod.add_argument("--key-schema", metavar="FILE", help="the key schema (subject <topic>-key)")

    cons = command(commands, "consume", "print records, one per line", _with_lab(consume, read_only=True), "topic")
    cons.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    cons.add_argument("--count", type=int, metavar="N", help="stop after N records")
    cons.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="idle time to stop after")
    cons.add_argument("--group", metavar="G", help="consumer group: resume from and commit its offsets")
    cons.add_argument("--partition", type=int, metavar="N", help="read only this partition")
    cons.add_argument("--format", choices=["value", "json"], default="value")
    _read_formats(cons)

    rep = command(commands, "replay", "write records to Parquet or CSV", _with_lab(replay, read_only=True), "topic")
    rep.add_argument("--out", required=True, metavar="FILE", help="a .parquet or .csv file")
    rep.add_argument("--start", type=offset_or_time, metavar="X", help="offset or ISO time (inclusive)")
    rep.add_argument("--end", type=offset_or_time, metavar="X", help="offset or ISO time (exclusive)")
    rep.add_argument("--partitions", type=partition_list, metavar="P,P", help="e.g. 0,1 (default: all)")
    _read_formats(rep)

    groups.add_commands(command, commands, _with_lab)
    browse.add_command(command, commands, _with_lab)

    text = "the clickstream scenario end to end (in a temporary directory unless --data)"
    dem = command(commands, "demo", text, lambda a: demo.run(a.data, a.records))
    dem.add_argument("--records", type=int, metavar="N", help="produce the first N events (default: all)")
    text = "verify every stored file (checksums, catalog) and report damage; --repair takes it out"
    check.add_arguments(command(commands, "check", text, check.run))
    text = "serve the data directory over the Kafka protocol until SIGINT/SIGTERM"
    serve.add_arguments(command(commands, "serve", text, serve.run))
    from streamlab.cli import jobs

    jobs.add_command(commands)
    return parser


def cli_message(exc: StreamlabError) -> str:
    """The error in the words of the command line (the API's messages name Python calls)."""
    if isinstance(exc, UnknownTopicError) and not isinstance(exc, UnknownPartitionError) and exc.topic:
        return (
            f"unknown topic {exc.topic!r}; `streamlab topics list` shows the topics, "
            f"`streamlab topics create {exc.topic}` creates it"
        )
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args.handler(args))
    except StreamlabError as exc:
        print(f"streamlab: error: {cli_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `streamlab consume t | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        print(f"streamlab: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

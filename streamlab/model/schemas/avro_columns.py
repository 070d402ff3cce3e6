"""Avro records of one schema, decoded many at a time into typed columns.

Replay decodes a topic's framed values per schema id: fastavro reads each payload (its C
reader; building a Python dict per record is most of the cost), and the columns are built
from the schema, not guessed from the values: a field's values go to Arrow with the
field's type in one call. Nested records become dotted names (``ship_to.city``), a null
record makes its fields NA.

How Avro types come out:

========================================  ==========================================
Avro                                      pandas
========================================  ==========================================
int, long                                 ``Int64`` (nullable: a row of an older
                                          schema version, or a null, is NA)
float, double                             ``float64``
boolean                                   ``boolean``
string, enum, uuid                        ``string`` (pyarrow-backed)
bytes, fixed                              object (``bytes``)
timestamp-millis/-micros                  ``datetime64[us, UTC]``
timestamp-nanos                           ``datetime64[ns, UTC]``
local-timestamp-millis/-micros/-nanos     naive ``datetime64[us]`` (``[ns]``)
date                                      object (``datetime.date``, as ``lab.sql``
                                          gives DATE columns)
time-millis/-micros                       object (``datetime.time``)
decimal                                   object (``decimal.Decimal``: exact; use
                                          ``.astype(float)`` for arithmetic speed)
record                                    its fields, as ``parent.child`` columns
["null", T]                               T, with NA for null
array, map, other unions                  object (lists, dicts, values as fastavro
                                          decodes them)
========================================  ==========================================
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

_STRING = pd.StringDtype("pyarrow")
_INTS = ("int", "long")
# logical types read as their underlying int (or string) and converted by Arrow: fastavro
# building a datetime per value costs more than the whole rest of the record
_PLAIN_LOGICAL = {
    "timestamp-millis": pa.timestamp("ms", "UTC"), "timestamp-micros": pa.timestamp("us", "UTC"),
    "timestamp-nanos": pa.timestamp("ns", "UTC"), "local-timestamp-millis": pa.timestamp("ms"),
    "local-timestamp-micros": pa.timestamp("us"), "local-timestamp-nanos": pa.timestamp("ns"),
    "date": pa.date32(), "time-millis": pa.time32("ms"), "time-micros": pa.time64("us"), "uuid": pa.string(),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Leaf:
    name: str  # dotted
    path: tuple[str, ...]
    build: Callable[[list[Any]], Any]  # a field's values -> a pandas array or Series


def _nullable_of(schema: Any) -> Any:
    """T of a ``["null", T]`` union, else None."""
    if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
        return schema[1] if schema[0] == "null" else schema[0]
    return None


def _arrow(kind: pa.DataType, plain: bool) -> Callable[[list[Any]], Any]:
    """Values of a logical type: their underlying ints when ``plain`` (cast by Arrow), else
    what fastavro made of them (datetimes, dates, times, UUIDs)."""

    def build(values: list[Any]) -> Any:
        if plain:
            source = pa.string() if pa.types.is_string(kind) else pa.int32() if kind.bit_width == 32 else pa.int64()
            array = pa.array(values, source).cast(kind)
        elif pa.types.is_string(kind):
            array = pa.array([None if v is None else str(v) for v in values], kind)
        else:
            array = pa.array(values, kind)
        if pa.types.is_string(kind):
            return pd.array(array, dtype=_STRING)
        if pa.types.is_timestamp(kind):
            target = pa.timestamp("ns" if kind.unit == "ns" else "us", kind.tz)
            return pd.Series(array.cast(target).to_pandas()).array
        return _objects(array.to_pylist())  # dates, times

    return build


def _ints(values: list[Any]) -> Any:
    return pa.array(values, pa.int64()).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).array


def _floats(values: list[Any]) -> Any:
    return pa.array(values, pa.float64()).to_numpy(zero_copy_only=False)


def _bools(values: list[Any]) -> Any:
    return pa.array(values, pa.bool_()).to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get).array


def _strings(values: list[Any]) -> Any:
    return pd.array(pa.array(values, pa.string()), dtype=_STRING)


def _objects(values: list[Any]) -> Any:
    out = pd.array([None] * len(values), dtype=object)
    out[:] = values  # lists stay lists (an object array from a list of lists would be 2-D)
    return out


def _leaf_builder(schema: Any, plain: bool) -> Callable[[list[Any]], Any]:
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical in _PLAIN_LOGICAL:
            return _arrow(_PLAIN_LOGICAL[logical], plain)
        if logical is None or logical == "decimal":
            kind = schema.get("type")
            if kind in ("enum",):
                return _strings
            if logical is None and isinstance(kind, str) and kind not in ("record", "fixed", "array", "map"):
                return _leaf_builder(kind, plain)
        return _objects
    return {"int": _ints, "long": _ints, "float": _floats, "double": _floats, "boolean": _bools,
            "string": _strings}.get(schema, _objects)  # fmt: skip


class AvroColumns:
    """Typed columns of the records of one (fastavro-parsed) Avro schema."""

    def __init__(self, parsed: Any) -> None:
        self._named: dict[str, Any] = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
        self._reader = _plain_schema(parsed)
        self._plain = self._reader is not None
        if self._reader is None:
            self._reader = parsed
        self.is_record = isinstance(self._record(parsed), dict)
        self._leaves: list[_Leaf] = []
        if self.is_record:
            self._walk(self._record(parsed), (), set())

    def _record(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self._named:
            schema = self._named[schema]
        return schema if isinstance(schema, dict) and schema.get("type") == "record" else None

    def _walk(self, record: dict[str, Any], path: tuple[str, ...], seen: set[str]) -> None:
        seen = seen | {record.get("name", "")}
        for field in record["fields"]:
            kind = field["type"]
            inner = _nullable_of(kind)
            target = inner if inner is not None else kind
            nested = self._record(target)
            at = (*path, field["name"])
            if nested is not None and nested.get("name") not in seen:
                self._walk(nested, at, seen)
            else:
                if isinstance(target, str) and target in self._named:
                    target = self._named[target]  # an enum or fixed by name
                self._leaves.append(_Leaf(".".join(at), at, _leaf_builder(target, self._plain)))

    @property
    def reader_schema(self) -> Any:
        """The parsed schema the payloads are read with: the writer's, with the logical types
        :meth:`frame` converts left out when that is safe."""
        return self._reader

    def frame(self, records: list[Any], index: list[int]) -> pd.DataFrame:
        """The fields of ``records`` (read with :attr:`reader_schema`) as typed columns on ``index``."""
        columns: dict[str, Any] = {}
        parents: dict[tuple[str, ...], list[Any]] = {(): records}
        for leaf in self._leaves:
            columns[leaf.name] = leaf.build(_values(parents, leaf.path))
        return pd.DataFrame(columns, index=pd.Index(index))


def _values(parents: dict[tuple[str, ...], list[Any]], path: tuple[str, ...]) -> list[Any]:
    """The values at ``path`` of every record (None under a null record), parents cached."""
    head = path[:-1]
    above = parents.get(head)
    if above is None:
        above = parents[head] = _values(parents, head)
    name = path[-1]
    return [None if r is None else r[name] for r in above]


def _plain_schema(parsed: Any) -> Any:
    """``parsed`` with the logical types of its record fields left out (read as their
    underlying types, converted by Arrow), or None when that is not safe: a schema with
    named types of other schemas (references), or a record used again by name, whose other
    uses (in an array...) must keep their logical types."""
    import fastavro

    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        return None
    plain = {k: v for k, v in copy.deepcopy(parsed).items() if not k.startswith("__")}
    used: set[str] = set()
    _used_names(plain, used)
    if used:
        return None
    _strip(plain)
    try:
        return fastavro.parse_schema(plain)
    except Exception:  # fastavro's SchemaParseException...: read with logical types then
        return None


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _used_names(schema: Any, used: set[str]) -> None:
    """The named types ``schema`` uses by name (defined in it or in a reference)."""
    if isinstance(schema, str):
        if schema not in _PRIMITIVES:
            used.add(schema)
    elif isinstance(schema, list):
        for branch in schema:
            _used_names(branch, used)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if isinstance(kind, dict | list) or kind not in ("record", "error", "enum", "fixed", "array", "map"):
            _used_names(kind, used)
        for field in schema.get("fields", []):
            _used_names(field["type"], used)
        for key in ("items", "values"):
            if key in schema:
                _used_names(schema[key], used)


def _strip(record: dict[str, Any]) -> None:
    """Leave out the logical types of ``record``'s fields (in nested records and
    ``["null", T]`` unions too; not in arrays, maps or other unions, kept as decoded)."""
    for field in record["fields"]:
        kind = field["type"]
        inner = _nullable_of(kind)
        target = inner if inner is not None else kind
        if isinstance(target, dict) and target.get("logicalType") in _PLAIN_LOGICAL:
            bare = target["type"]
            if inner is not None:
                field["type"] = [bare if branch is inner else branch for branch in kind]
            else:
                field["type"] = bare
        elif isinstance(target, dict) and target.get("type") == "record":
            _strip(target)

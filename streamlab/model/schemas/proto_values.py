"""A decoded Protobuf message as plain Python values of their real types, read from its
descriptor (protobuf's JSON mapping would give int64 as text and Timestamps as ISO text).

- integers (int32, int64, uint64, sint*, fixed*) → ``int``; float, double → ``float``;
  bool → ``bool``; string → ``str``; bytes → ``bytes``;
- enums → their value's name (a number the schema does not know stays a number);
- ``google.protobuf.Timestamp`` → tz-aware UTC ``datetime``; ``google.protobuf.Duration``
  → ``timedelta``; the wrappers (``google.protobuf.Int64Value``...) → their scalar;
  ``Struct``/``Value``/``ListValue`` → dicts, lists, scalars (their JSON mapping);
- nested messages → dicts (a replay spreads them into dotted columns); an unset message
  field, a wrapper or proto3 ``optional`` scalar that is not set → None;
- repeated fields → lists; maps → dicts.

Every field of the message is there (an unset proto3 scalar has its default, 0 or ""),
so a field's column does not depend on which rows happened to carry a non-default value.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

_WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_JSON_MAPPED = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})
_TYPE_MESSAGE, _TYPE_ENUM = 11, 14  # FieldDescriptor.TYPE_*


def message_values(message: Any) -> dict[str, Any]:
    """``message``'s fields by name, as real Python values (see the module's docstring)."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {k: _single(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_single(field, v) for v in value]
        elif field.has_presence and not message.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = _single(field, value)
    return out


def _single(field: Any, value: Any) -> Any:
    if field.type == _TYPE_ENUM:
        known = field.enum_type.values_by_number.get(value)
        return value if known is None else known.name
    if field.type != _TYPE_MESSAGE:
        return value
    name = field.message_type.full_name
    if name == "google.protobuf.Timestamp":
        return value.ToDatetime(tzinfo=dt.UTC)
    if name == "google.protobuf.Duration":
        return value.ToTimedelta()
    if name in _WRAPPERS:
        return value.value
    if name in _JSON_MAPPED:
        from google.protobuf import json_format

        return json_format.MessageToDict(value)
    return message_values(value)

"""Confluent Schema Registry's REST API over the directory's schema store
(:mod:`streamlab.broker.schema_registry`), served by ``streamlab serve --schema-registry-port``
in the Kafka server's event loop (aiohttp), so confluent-kafka's ``SchemaRegistryClient`` and
its Avro, JSON Schema and Protobuf serializers work against it unchanged.

Errors answer with Confluent's bodies, ``{"error_code": 40401, "message": ...}`` (see the
SchemaRegistryError subclasses in :mod:`streamlab.errors`). Store calls (each change is
fsynced) run in the server's thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import importlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from streamlab.broker import Broker
from streamlab.broker.schema_registry import SchemaStore, schema_store
from streamlab.errors import SchemaRegistryError, StreamlabError
from streamlab.model.schemas.proto import file_proto, is_text
from streamlab.model.schemas.registry import check_subject, parse_version
from streamlab.model.schemas.types import SCHEMA_TYPES, Schema

log = logging.getLogger("streamlab.server.registry")
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
STORE: web.AppKey[SchemaStore] = web.AppKey("store", SchemaStore)
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=CONTENT_TYPE)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SchemaRegistryError as exc:
        return _reply({"error_code": exc.error_code, "message": str(exc)}, exc.http_status)
    except web.HTTPException as exc:  # no such route or method
        return _reply({"error_code": exc.status, "message": exc.reason}, exc.status)
    except StreamlabError as exc:  # the store could not write (disk full, broker closing)
        log.warning("schema registry: %s %s: %s", request.method, request.path, exc)
        return _reply({"error_code": 50001, "message": f"Error in the backend data store: {exc}"}, 500)


async def _run(request: web.Request, call: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, call)


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(reason=f"the request body is not JSON: {exc}") from None


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


def _schema_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit():
        raise web.HTTPNotFound(reason=f"a schema id is an integer, got {text!r}")
    return int(text)


def _store(request: web.Request) -> SchemaStore:
    return request.app[STORE]


# routes ------------------------------------------------------------------------------------
routes = web.RouteTableDef()


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    return _reply({})


@routes.get("/schemas/types")
async def schema_types(request: web.Request) -> web.Response:
    return _reply(list(SCHEMA_TYPES))


def _as_asked(request: web.Request, schema: Schema) -> Schema:
    """``?format=serialized`` (Confluent's): a Protobuf schema stored as .proto text given as
    the base64 FileDescriptorProto that confluent-kafka's Protobuf serializers parse."""
    if request.query.get("format") != "serialized" or schema.schema_type != "PROTOBUF" or not is_text(schema.schema):
        return schema
    return dataclasses.replace(schema, schema=base64.b64encode(file_proto(schema).SerializeToString()).decode())


@routes.get("/schemas/ids/{id}")
async def schema_by_id(request: web.Request) -> web.Response:
    schema = await _run(request, functools.partial(_store(request).schema, _schema_id(request)))
    return _reply(_as_asked(request, schema).to_json())


@routes.get("/schemas/ids/{id}/schema")
async def raw_schema_by_id(request: web.Request) -> web.Response:
    schema = await _run(request, functools.partial(_store(request).schema, _schema_id(request)))
    return web.Response(text=schema.schema, content_type=CONTENT_TYPE)


@routes.get("/schemas/ids/{id}/subjects")
async def subjects_by_id(request: web.Request) -> web.Response:
    found = await _run(request, functools.partial(_store(request).usages, _schema_id(request),
                                                  deleted=_flag(request, "deleted")))  # fmt: skip
    return _reply(sorted({subject for subject, _ in found}))


@routes.get("/schemas/ids/{id}/versions")
async def versions_by_id(request: web.Request) -> web.Response:
    found = await _run(request, functools.partial(_store(request).usages, _schema_id(request),
                                                  deleted=_flag(request, "deleted")))  # fmt: skip
    return _reply([{"subject": subject, "version": version} for subject, version in found])


@routes.get("/subjects")
async def subjects(request: web.Request) -> web.Response:
    names = await _run(request, functools.partial(_store(request).subjects, deleted=_flag(request, "deleted")))
    prefix = request.query.get("subjectPrefix", "")
    return _reply([s for s in names if s.startswith(prefix)])


@routes.get("/subjects/{subject}/versions")
async def versions(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    found = await _run(request, functools.partial(_store(request).versions, subject, deleted=_flag(request, "deleted")))
    return _reply(found)


@routes.post("/subjects/{subject}/versions")
async def register(request: web.Request) -> web.Response:
    subject = check_subject(request.match_info["subject"])
    schema = Schema.from_json(await _body(request))
    registered = await _run(request, functools.partial(_store(request).register, subject, schema))
    return _reply({"id": registered.id})


@routes.get("/subjects/{subject}/versions/{version}")
async def version(request: web.Request) -> web.Response:
    found = await _run(request, functools.partial(
        _store(request).version, request.match_info["subject"], parse_version(request.match_info["version"]),
        deleted=_flag(request, "deleted")))  # fmt: skip
    return _reply(dataclasses.replace(found, schema=_as_asked(request, found.schema)).to_json())


@routes.get("/subjects/{subject}/versions/{version}/schema")
async def version_schema(request: web.Request) -> web.Response:
    found = await _run(request, functools.partial(
        _store(request).version, request.match_info["subject"], parse_version(request.match_info["version"]),
        deleted=_flag(request, "deleted")))  # fmt: skip
    return web.Response(text=found.schema.schema, content_type=CONTENT_TYPE)


@routes.post("/subjects/{subject}")
async def lookup(request: web.Request) -> web.Response:
    schema = Schema.from_json(await _body(request))
    found = await _run(request, functools.partial(_store(request).lookup, request.match_info["subject"], schema,
                                                  deleted=_flag(request, "deleted")))  # fmt: skip
    return _reply(found.to_json())


@routes.delete("/subjects/{subject}")
async def delete_subject(request: web.Request) -> web.Response:
    deleted = await _run(request, functools.partial(_store(request).delete_subject, request.match_info["subject"],
                                                    permanent=_flag(request, "permanent")))  # fmt: skip
    return _reply(deleted)


@routes.delete("/subjects/{subject}/versions/{version}")
async def delete_version(request: web.Request) -> web.Response:
    deleted = await _run(request, functools.partial(
        _store(request).delete_version, request.match_info["subject"], parse_version(request.match_info["version"]),
        permanent=_flag(request, "permanent")))  # fmt: skip
    return _reply(deleted)


@routes.get("/config")
async def global_config(request: web.Request) -> web.Response:
    level = await _run(request, _store(request).level)
    return _reply({"compatibilityLevel": level})


@routes.get("/config/{subject}")
async def subject_config(request: web.Request) -> web.Response:
    """The subject's level; a subject without one answers with the global level (as with
    Confluent's ``defaultToGlobal=true``)."""
    level = await _run(request, functools.partial(_store(request).level, request.match_info["subject"]))
    return _reply({"compatibilityLevel": level})


def _level_of(body: Any) -> Any:
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the request body is an object with 'compatibility'")
    return body.get("compatibility", body.get("compatibilityLevel"))


@routes.put("/config")
async def put_global_config(request: web.Request) -> web.Response:
    level = _level_of(await _body(request))
    checked = await _run(request, functools.partial(_store(request).set_level, level if level else "", None))
    return _reply({"compatibility": checked})


@routes.put("/config/{subject}")
async def put_subject_config(request: web.Request) -> web.Response:
    level = _level_of(await _body(request))
    subject = request.match_info["subject"]
    checked = await _run(request, functools.partial(_store(request).set_level, level if level else "", subject))
    return _reply({"compatibility": checked})


@routes.delete("/config/{subject}")
async def delete_subject_config(request: web.Request) -> web.Response:
    store, subject = _store(request), request.match_info["subject"]
    old = await _run(request, functools.partial(store.subject_level, subject))
    await _run(request, functools.partial(store.set_level, None, subject))
    return _reply({"compatibilityLevel": old or await _run(request, store.level)})


@routes.get("/mode")
async def mode(request: web.Request) -> web.Response:
    return _reply({"mode": "READWRITE"})


@routes.post("/compatibility/subjects/{subject}/versions/{version}")
@routes.post("/compatibility/subjects/{subject}/versions")
async def compatibility(request: web.Request) -> web.Response:
    """``versions/{v}`` checks against that version (``latest``: the versions the subject's
    level names); ``versions`` alone checks against the level's versions."""
    given = request.match_info.get("version")
    version = None if given is None else parse_version(given)
    schema = Schema.from_json(await _body(request))
    problems = await _run(request, functools.partial(_store(request).check, request.match_info["subject"], schema,
                                                     version))  # fmt: skip
    body: dict[str, Any] = {"is_compatible": not problems}
    if _flag(request, "verbose"):
        body["messages"] = problems
    return _reply(body)


def registry_app(store: SchemaStore) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=16 * 1024 * 1024)
    app[STORE] = store
    app.add_routes(routes)
    return app


async def start_registry(listeners: contextlib.AsyncExitStack, broker: Broker, host: str, port: int) -> int:
    """Serve the registry of ``broker``'s directory on ``host:port`` until ``listeners``
    closes; returns the bound port (``port=0`` picks one)."""
    loop = asyncio.get_running_loop()
    store = await loop.run_in_executor(None, schema_store, broker)  # reads the _schemas topic
    # Imported now, beside serving: importing jsonschema can take seconds (with rfc3987-syntax
    # installed it compiles a grammar), which the first JSON Schema request would wait for. A
    # daemon thread, not the pool: stopping the server must not wait for it.
    threading.Thread(target=importlib.import_module, args=("jsonschema",), daemon=True).start()
    runner = web.AppRunner(registry_app(store), access_log=None, handle_signals=False)
    await runner.setup()
    listeners.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, host, port).start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port  # port 0 picks one
    log.info("schema registry: serving on http://%s:%d", host, bound)
    return bound

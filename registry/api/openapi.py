"""The OpenAPI 3 document, generated from the pydantic models the views validate with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint
from pydantic import BaseModel
from werkzeug.routing import IntegerConverter, Map

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Operation:
    """One documented endpoint."""

    path: str
    method: str
    summary: str
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    tag: str
    query: dict[str, str] = field(default_factory=dict)
    auth: bool = True


OPERATIONS: list[Operation] = []
ID_MAX = 2**63 - 1  # BIGINT


class IdConverter(IntegerConverter):
    """A record id in a URL: a positive BIGINT, so no id can overflow the database (else 404)."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=ID_MAX)


def route(
    bp: Blueprint,
    path: str,
    method: str,
    *,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    query: dict[str, str] | None = None,
    auth: bool = True,
) -> Callable[[F], F]:
    """Register a view on ``bp`` and record it for the OpenAPI document."""

    def wrap(view: F) -> F:
        OPERATIONS.append(
            Operation(path, method.lower(), summary, body, response, status, tag, query or {}, auth)
        )
        bp.add_url_rule(path, view_func=view, methods=[method])
        return view

    return wrap


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        }
    },
}


def _openapi_path(path: str) -> str:
    # Flask's <name> and <id:name> become OpenAPI's {name}.
    out = []
    for part in path.split("/"):
        if part.startswith("<") and part.endswith(">"):
            part = "{" + part[1:-1].split(":")[-1] + "}"
        out.append(part)
    return "/".join(out)


def document(prefix: str) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document for every registered operation."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}

    def ref(model: type[BaseModel], mode: str) -> dict[str, str]:
        schema = model.model_json_schema(
            ref_template="#/components/schemas/{model}",
            mode=mode,  # type: ignore[arg-type]
        )
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for op in OPERATIONS:
        item: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_').replace('<', '').replace('>', '').replace(':', '_')}",
            "responses": {},
        }
        params = []
        for part in op.path.split("/"):
            if part.startswith("<"):
                name = part[1:-1].split(":")[-1]
                schema: dict[str, Any] = {"type": "string", "maxLength": 512}
                if part.startswith("<id:"):
                    schema = {"type": "integer", "minimum": 1, "maximum": ID_MAX}
                params.append({"name": name, "in": "path", "required": True, "schema": schema})
        for name, kind in op.query.items():
            params.append(
                {"name": name, "in": "query", "required": False, "schema": {"type": kind}}
            )
        if params:
            item["parameters"] = params
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": ref(op.response, "serialization")}}
        item["responses"][str(op.status)] = ok
        codes = ["400", "422", "429"] if op.body is not None else ["422", "429"]
        if op.auth:
            codes += ["401", "403"]
        if "<" in op.path:
            codes.append("404")
        if op.body is not None:
            codes += ["409", "413"]
        codes += ["414", "431"]  # a request target over 4 KB, a header over 8 KB (registry/edge.py)
        for code in sorted(set(codes)):
            item["responses"][code] = {"description": "Error", "content": error}
        if op.auth:
            item["security"] = [{"bearer": []}]
        paths.setdefault(_openapi_path(prefix + op.path), {})[op.method] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Anning registry API",
            "version": "1",
            "description": "Consent and do-not-disturb registry: preflight checks, consents, "
            "opt-outs, numbers. Every error uses the envelope in components.schemas.Error.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

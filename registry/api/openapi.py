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
    # Statuses this operation answers beyond the ones every operation of its
    # kind does (see ``statuses``), each with what it means here.
    responses: dict[int, str] = field(default_factory=dict)
    # A body that is not a JSON model (Kannel's text, the SMS clouds' formats): media, schema.
    body_schema: tuple[str, dict[str, Any]] | None = None
    # How the caller proves itself: a bearer key, the key as HTTP basic auth's password
    # (Kannel), or, with ``auth`` false, something the operation checks itself.
    security: str = "bearer"
    headers: dict[str, str] = field(default_factory=dict)
    # ``text/plain``: a one-line answer (and one-line errors) instead of JSON.
    media: str = "application/json"
    text_example: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)  # of the success response
    # A body that is a file, not JSON (its media type, e.g. text/csv), and the
    # media type of a response that is one.
    raw_body: str | None = None
    produces: str | None = None
    required: tuple[str, ...] = ()  # query parameters that must be given

    def statuses(self) -> dict[int, str]:
        """Return every status the operation answers, with its description."""
        codes = {self.status: "OK", 422: ERRORS[422], 429: ERRORS[429], 503: ERRORS[503]}
        codes |= {414: ERRORS[414], 431: ERRORS[431]}  # registry/edge.py, on every request
        if self.body is not None or self.body_schema is not None or self.raw_body is not None:
            codes |= {400: ERRORS[400], 409: ERRORS[409], 413: ERRORS[413]}
        if self.auth:
            codes |= {401: ERRORS[401], 403: ERRORS[403]}
        if "<" in self.path:
            codes[404] = ERRORS[404]
        return codes | self.responses


# What an error status means, wherever it is answered (each in the envelope).
ERRORS = {
    400: "The body is not JSON, or not the object the operation takes (a callback: not its sender's format)",
    401: "No API key, or one that is unknown or revoked",
    403: "The key's organization may not do this (role, scope, suspension, credit-list listing, another's record); a callback's signature or token is not this registry's",
    404: "No such record, or not one of yours",
    409: "The request conflicts with the record's state",
    413: "The body or the batch is larger than the operation takes",
    414: "The request target (path and query) is over 4 KB",
    422: "A field, query parameter or number is not valid",
    429: (
        "rate_limited: a per-key limit (REGISTRY_RATELIMIT_READ on every GET, "
        "REGISTRY_RATELIMIT_WRITE or _CHECK on writes), the organization's cold-number budget "
        "(checks, compare rows, watchlist entries on numbers it has no record with), or a "
        "number's budget of consent texts was spent; retry after Retry-After seconds"
    ),
    431: "A header field is over 8 KB",
    503: "The database is unreachable; retry shortly",
}


OPERATIONS: list[Operation] = []
ID_MAX = 2**63 - 1  # BIGINT


INT_ID_MAX = 2**31 - 1  # INTEGER: the id column of the smaller tables (webhooks, complaints...)


class IdConverter(IntegerConverter):
    """A record id in a URL (``<id:>``): a positive BIGINT, so no id can overflow the database (else 404)."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=ID_MAX)


class IntIdConverter(IntegerConverter):
    """A record id of a table with an INTEGER id (``<int:>``): 1 to 2^31-1, else 404.

    Installed in place of werkzeug's ``int``, whose unbounded values reach
    PostgreSQL as "integer out of range" (a 500).
    """

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=INT_ID_MAX)


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
    responses: dict[int, str] | None = None,
    body_schema: tuple[str, dict[str, Any]] | None = None,
    security: str = "bearer",
    media: str = "application/json",
    text_example: str | None = None,
    headers: dict[str, str] | None = None,
    response_headers: dict[str, str] | None = None,
    raw_body: str | None = None,
    produces: str | None = None,
    required: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Register a view on ``bp`` and record it for the OpenAPI document.

    ``responses`` adds the statuses only this operation answers (a 200 beside
    its 201, a 409 without a body) to those of its kind (``Operation.statuses``).
    """

    def wrap(view: F) -> F:
        operation = Operation(path, method.lower(), summary, body, response, status, tag)
        operation.query, operation.auth, operation.responses = query or {}, auth, responses or {}
        operation.body_schema, operation.security = body_schema, security
        operation.media, operation.text_example = media, text_example
        operation.headers, operation.response_headers = headers or {}, response_headers or {}
        operation.raw_body, operation.produces, operation.required = raw_body, produces, required
        OPERATIONS.append(operation)
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


RATE_LIMITED = {
    "description": ERRORS[429],
    "headers": {
        "Retry-After": {"description": "seconds until the limit's window reopens",
                        "schema": {"type": "integer", "minimum": 1}}
    },
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}  # fmt: skip


# The receipt of a single check, in headers (the plain-text form has no body to carry it).
RECEIPT_HEADERS = {
    "X-Anning-Check-Id": "the signed receipt id (GET /receipts/{check_id} verifies it)",
    "X-Anning-Checked-At": "when the registry answered (ISO 8601 UTC)",
    "X-Anning-Read-From": "primary or replica: the database the facts were read from",
}

# A one-line answer of a plain-text operation, and its one-line errors (api/errors.py).
TEXT_ANSWER = r"^(ALLOW|DENY) [a-z_]+( \S+)?\n$"
TEXT_ERROR = {"text/plain": {"schema": {"type": "string", "pattern": r"^ERROR [a-z_]+ .*\n$"}}}


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
                elif part.startswith("<int:"):
                    schema = {"type": "integer", "minimum": 1, "maximum": INT_ID_MAX}
                params.append({"name": name, "in": "path", "required": True, "schema": schema})
        for name, kind in op.query.items():
            # A type ending in "!" marks a required parameter ("string!").
            params.append(
                {"name": name, "in": "query",
                 "required": kind.endswith("!") or name in op.required,
                 "schema": {"type": kind.rstrip("!")}}
            )  # fmt: skip
        for name, description in op.headers.items():
            params.append({"name": name, "in": "header", "required": True,
                           "description": description,
                           "schema": {"type": "string", "maxLength": 64}})  # fmt: skip
        if params:
            item["parameters"] = params
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        elif op.body_schema is not None:
            media, body_schema = op.body_schema
            item["requestBody"] = {"required": True, "content": {media: {"schema": body_schema}}}
        elif op.raw_body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {op.raw_body: {"schema": {"type": "string"}}},
            }
        text = op.media == "text/plain"
        for code, description in sorted(op.statuses().items()):
            answer: dict[str, Any] = {"description": description}
            if code >= 400:
                answer["content"] = TEXT_ERROR if text else error
            elif text:
                line: dict[str, Any] = {"type": "string", "pattern": TEXT_ANSWER}
                if op.text_example:
                    line["examples"] = [op.text_example + "\n"]
                answer["content"] = {"text/plain": {"schema": line}}
            elif op.produces is not None and code == op.status:
                answer["content"] = {op.produces: {"schema": {"type": "string"}}}
            elif op.response is not None and code != 204:
                schema_ref = ref(op.response, "serialization")
                answer["content"] = {"application/json": {"schema": schema_ref}}
            if 200 <= code < 300 and op.response_headers:
                answer["headers"] = {
                    name: {"description": what, "schema": {"type": "string"}}
                    for name, what in op.response_headers.items()
                }
            item["responses"][str(code)] = answer
        # Every operation, reads included: Retry-After.
        item["responses"]["429"] = {**RATE_LIMITED, "content": TEXT_ERROR} if text else RATE_LIMITED
        if op.auth:
            item["security"] = [{op.security: []}]
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
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                # Kannel sends the user:password of a URL as basic auth: the gateway key
                # is the password (registry/api/gateway.py).
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }

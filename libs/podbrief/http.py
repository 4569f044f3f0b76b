"""HTTP pieces every service API shares: RFC 9457 problem details, the routes' access to the service's
dependencies, the admin API key, body size limits."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem(
    status: int, title: str, detail: str | None = None, *, type_: str = "about:blank", **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


class ProblemError(HTTPException):
    """Raise from a route to answer with a problem document (`headers`: extra response headers, such as
    Retry-After on a 429)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers) if headers else None)
        self.title = title
        self.extra = extra


class Problem(BaseModel):
    """RFC 9457 problem details: how every service answers an error. Members beyond these (`errors` on a 422,
    `reason` and `url` on a refused feed) are extensions."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None


_PROBLEM_TEXT = {
    400: "Bad request",
    401: "Missing or invalid credentials",
    403: "Not allowed (or admin endpoints are disabled)",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    422: "Invalid request",
    429: "Too many requests (see Retry-After)",
    502: "An upstream server failed",
    503: "Not ready, or a dependency is unavailable",
    504: "An upstream server timed out",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: each status answers a problem document."""
    return {s: {"model": Problem, "description": _PROBLEM_TEXT.get(s, "Error")} for s in statuses}


def _problem_openapi(schema: dict[str, Any]) -> None:
    """Make the document say what the services answer: errors are application/problem+json Problem documents
    (FastAPI documents its own 422 shape and puts `model=` responses under application/json), and every
    operation may answer 413 (the body limit runs before routing)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}"))
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            responses.setdefault("413", {"description": _PROBLEM_TEXT[413]})
            if "requestBody" in operation:
                # FastAPI answers 400 to a body it cannot decode at all (bytes that are not UTF-8 JSON).
                responses.setdefault("400", {"description": _PROBLEM_TEXT[400]})
            for code, response in responses.items():
                if not code.isdigit() or int(code) < 400:
                    continue
                content = response.get("content")
                # A route that documents an error body of its own (readyz's 503) keeps it.
                if content is None or code == "422" or content.get("application/json", {}).get("schema") == ref:
                    response["content"] = {PROBLEM_JSON: {"schema": ref}}
                if code == "422":
                    response["description"] = _PROBLEM_TEXT[422]
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in components and unused not in str(schema.get("paths")):
            del components[unused]


def install_problem_openapi(app: FastAPI) -> None:
    generate = app.openapi
    done: set[int] = set()

    def openapi() -> dict[str, Any]:
        schema = generate()
        # FastAPI caches the document and rebuilds it when routes change; each build is rewritten once.
        if id(schema) not in done:
            _problem_openapi(schema)
            done.add(id(schema))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        resp = problem(exc.status_code, exc.title, exc.detail, **exc.extra)
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {
            400: "Bad Request",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
            409: "Conflict",
            413: "Content Too Large",
            429: "Too Many Requests",
        }.get(exc.status_code, "Error")
        resp = problem(exc.status_code, title, str(exc.detail) if exc.detail else None)
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return problem(422, "Invalid request", f"{len(errors)} field(s) failed validation", errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug still answers a problem document, never a plain-text page; the details go to the log only.
        log.error(
            "unhandled error answering a request",
            exc_info=exc,
            extra={"method": request.method, "path": request.url.path, "error_class": type(exc).__name__},
        )
        return problem(500, "Internal Server Error", "the server failed to answer this request")


def check_api_key(presented: str | None, expected: str | None) -> bool:
    if not expected or not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def _started(request: Request, what: str) -> Any:
    value = getattr(request.app.state, what, None)
    if value is None:
        raise ProblemError(503, "Service starting", "dependencies are not ready yet")
    return value


def deps_of(request: Request) -> Any:
    """The service's dependencies, for its routes. Each service declares its one alias with it, in deps.py:
    `DepsDep = Annotated[Deps, Depends(deps_of)]`."""
    return _started(request, "deps")


def require_admin(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
    """The dependency of every admin route: 403 while no admin key is configured (admin endpoints are closed),
    401 when the X-API-Key header is missing or wrong. The key is compared in constant time."""
    settings = _started(request, "settings")
    expected = settings.http.admin_api_key
    if expected is None:
        prefix = str(type(settings).model_config.get("env_prefix") or "")
        raise ProblemError(403, "Forbidden", f"admin endpoints are disabled: set {prefix}HTTP__ADMIN_API_KEY")
    if not check_api_key(x_api_key, expected.get_secret_value()):
        raise ProblemError(401, "Unauthorized", "missing or wrong X-API-Key")


# `responses=` of an admin route: what `require_admin` answers.
ADMIN_PROBLEMS = (401, 403)


class BodySizeLimit:
    """Refuse request bodies over a limit before reading them whole (413). `max_bytes` may be a function, read
    on each request: the chassis reads the service's settings, which exist only once its lifespan has run."""

    def __init__(self, app: ASGIApp, max_bytes: int | Callable[[], int]) -> None:
        self.app = app
        self._limit = max_bytes

    @property
    def max_bytes(self) -> int:
        return self._limit() if callable(self._limit) else self._limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await problem(413, "Content Too Large", f"request body over {limit} bytes")(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"request body over {limit} bytes")
            return message

        await self.app(scope, limited, send)

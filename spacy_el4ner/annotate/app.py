"""The review web app (Starlette): a static page and a small JSON API over ``Review``.

GET  /                the page; /static/... its script and style
GET  /api/config      dataset, labels, label colours, counts
POST /api/next        the next task ({"task": null} when the source is done)
POST /api/answer      {"id", "answer": accept|reject|ignore, "spans": [{"start", "end", "label"}]}
POST /api/undo        {"id"}: take back this session's answer to a task; returns the task
POST /api/release     {"id"}: give a task back unanswered
GET  /api/history     this session's last answers, newest first

POST bodies must be JSON (Content-Type: application/json, 415 otherwise: other web pages cannot
send that through the browser without a CORS preflight, which this app never grants), read up to
a limit (413 past it) and checked before anything changes: a bad request gets a 4xx with
{"error": ...} and changes nothing. Served on loopback, only loopback Host headers are answered
(400 otherwise), against DNS rebinding.
"""
import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import Errors
from .colors import label_colors
from .review import Review, UnknownTask
from .tasks import BadAnswer

logger = logging.getLogger("spacy_el4ner")

STATIC = Path(__file__).parent / "static"
MAX_BODY = 1_000_000


class _TooLarge(Exception):
    pass


class _NotJSON(Exception):
    pass


LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def host_name(header: str) -> str:
    """The host of a Host header, without the port: "[::1]:8080" -> "[::1]", "localhost:80" -> "localhost"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.index("]") + 1] if "]" in header else header
    return header.split(":")[0]


class HostCheck:
    """ASGI middleware: answer only requests whose Host header names an allowed host (400
    otherwise), so that a web page on another name cannot reach the server by DNS rebinding."""

    def __init__(self, app: Any, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed} | {f"[{h.lower()}]" for h in allowed if ":" in h and not h.startswith("[")}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and host_name(Headers(scope=scope).get("host", "")) not in self.allowed:
            response = _error(400, Errors.E420.format(host=Headers(scope=scope).get("host", ""), allowed=", ".join(sorted(self.allowed))))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_json(request: Request, limit: int) -> Dict[str, Any]:
    """The body as a JSON object, read no further than ``limit`` bytes. RAISES (_NotJSON, _TooLarge, BadAnswer)."""
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise _NotJSON(ctype)
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise _TooLarge()
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _TooLarge()
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise BadAnswer(Errors.E408.format(err=str(err)[:80])) from err
    if not isinstance(data, dict):
        raise BadAnswer(Errors.E408.format(err=f"got {type(data).__name__}"))
    return data


def make_app(review: Review, max_body: int = MAX_BODY, allowed_hosts: Optional[Sequence[str]] = None) -> Starlette:
    """The app for one review session. ``allowed_hosts``: the Host headers it answers (others get
    400, against DNS rebinding); None: any."""

    async def handle(request: Request, action) -> Response:
        try:
            body = await _read_json(request, max_body) if request.method == "POST" else {}
            return JSONResponse(await run_in_threadpool(action, body))
        except _NotJSON as err:
            return _error(415, Errors.E419.format(ctype=str(err)))
        except _TooLarge:
            return _error(413, Errors.E407.format(limit=max_body))
        except BadAnswer as err:
            return _error(400, str(err))
        except UnknownTask as err:
            return _error(404, str(err))

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def config(request: Request) -> Response:
        return JSONResponse({
            "dataset": review.dataset, "session": review.session, "labels": review.labels,
            "colors": label_colors(review.labels), "counts": review.counts(),
        })

    async def next_task(request: Request) -> Response:
        return await handle(request, lambda body: {"task": review.next_task(), "counts": review.counts()})

    def _answer(body: Dict[str, Any]) -> Dict[str, Any]:
        stored = review.answer(body.get("id"), body.get("answer"), body.get("spans", []))
        return {"ok": True, "example": stored, "counts": review.counts()}

    async def answer(request: Request) -> Response:
        return await handle(request, _answer)

    async def undo(request: Request) -> Response:
        return await handle(request, lambda body: {"task": review.undo(body.get("id")), "counts": review.counts()})

    def _release(body: Dict[str, Any]) -> Dict[str, Any]:
        review.release(body.get("id"))
        return {"ok": True}

    async def release(request: Request) -> Response:
        return await handle(request, _release)

    async def history(request: Request) -> Response:
        return JSONResponse({"history": review.history()})

    routes = [
        Route("/", index),
        Route("/api/config", config),
        Route("/api/next", next_task, methods=["POST"]),
        Route("/api/answer", answer, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
        Route("/api/release", release, methods=["POST"]),
        Route("/api/history", history),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    middleware = [] if allowed_hosts is None else [Middleware(HostCheck, allowed=allowed_hosts)]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.review = review
    return app


def serve(app: Starlette, host: str, port: int, log_level: str = "warning", server: Optional[list] = None) -> None:
    """Run the app with uvicorn until interrupted (``server``: receives the uvicorn Server)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    srv = uvicorn.Server(config)
    if server is not None:
        server.append(srv)
    srv.run()

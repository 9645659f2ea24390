"""The review web app (Starlette): a static page and a small JSON API over ``Review``.

GET  /                the page; /static/... its script and style
GET  /api/config      dataset, labels, label colours, counts
POST /api/next        the next task ({"task": null} when the source is done)
POST /api/answer      {"id", "answer": accept|reject|ignore, "spans": [{"start", "end", "label"}]}
POST /api/undo        {"id"}: take back this session's answer to a task; returns the task
POST /api/release     {"id"}: give a task back unanswered
GET  /api/history     this session's last answers, newest first

Bodies are read up to a limit (413 past it) and checked before anything changes: a bad request
gets a 4xx with {"error": ...} and changes nothing.
"""
import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
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


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_json(request: Request, limit: int) -> Dict[str, Any]:
    """The body as a JSON object, read no further than ``limit`` bytes. RAISES (_TooLarge, BadAnswer)."""
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


def make_app(review: Review, max_body: int = MAX_BODY) -> Starlette:
    """The app for one review session."""

    async def handle(request: Request, action) -> Response:
        try:
            body = await _read_json(request, max_body) if request.method == "POST" else {}
            return JSONResponse(await run_in_threadpool(action, body))
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

    async def release(request: Request) -> Response:
        return await handle(request, lambda body: {"ok": review.release(body.get("id")) is None})

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
    app = Starlette(routes=routes)
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

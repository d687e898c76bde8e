# The seed endpoint on Starlette, served on trio through anyio's trio backend.
#
# Starlette has no dependency injection, so the handler does the dependency's part inline; tasks go
# through Starlette's own BackgroundTasks, which run after the body is sent, inside the ASGI call.
from starlette.applications import Starlette
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks._types import ASGIApp
from benchmarks.apps import _work


async def _extra(request: Request) -> JSONResponse:
    return JSONResponse({"message": "extra"})


async def _count(request: Request) -> JSONResponse:
    return JSONResponse({"count": _work.COMPLETED.value})


def create_app(kind: str, *, log_dir: str | None = None, extra_routes: int = 0) -> ASGIApp:
    """Build the Starlette app; ``extra_routes`` dummy routes are matched before the seed route."""
    tasks = _work.task_set(kind, log_dir)

    async def send_notification(request: Request) -> JSONResponse:
        email = request.path_params["email"]
        q = request.query_params.get("q")
        background_tasks = BackgroundTasks()
        if tasks.enabled:
            if q:
                background_tasks.add_task(tasks.write_log, f"found query: {q}")
            background_tasks.add_task(tasks.write_notification, email, message="some notification")
        return JSONResponse({"message": "Message sent"}, background=background_tasks)

    routes = [Route(f"/extra-{i}/{{email}}", _extra, methods=["POST"]) for i in range(extra_routes)]
    routes.append(Route("/send-notification/{email}", send_notification, methods=["POST"]))
    routes.append(Route("/count", _count, methods=["GET"]))
    return Starlette(routes=routes)


app = create_app(_work.kind_from_env(), log_dir=_work.log_dir_from_env())

# The seed endpoint on triobg: the same code as the FastAPI app, with triobg's imports.
#
# No ``from __future__ import annotations`` here: like FastAPI, triobg may resolve the handlers'
# annotations at registration time, and the handlers are closures built per task kind. Importing
# this module fails when triobg is not importable; ``benchmarks.apps`` turns that into a skip.
from benchmarks._types import ASGIApp
from benchmarks.apps import _work
from triobg import App, BackgroundTasks, Depends


def create_app(kind: str, *, log_dir: str | None = None, extra_routes: int = 0) -> ASGIApp:
    """Build the triobg app; ``extra_routes`` dummy routes are matched before the seed route."""
    tasks = _work.task_set(kind, log_dir)
    app = App()

    async def extra(email: str) -> dict[str, str]:
        return {"message": "extra"}

    for i in range(extra_routes):
        app.post(f"/extra-{i}/{{email}}")(extra)

    async def get_query(background_tasks: BackgroundTasks, q: str | None = None) -> str | None:
        if q and tasks.enabled:
            background_tasks.add_task(tasks.write_log, f"found query: {q}")
        return q

    @app.post("/send-notification/{email}")
    async def send_notification(
        email: str,
        background_tasks: BackgroundTasks,
        q: str | None = Depends(get_query),
    ) -> dict[str, str]:
        if tasks.enabled:
            background_tasks.add_task(tasks.write_notification, email, message="some notification")
        return {"message": "Message sent"}

    @app.get("/count")
    async def count() -> dict[str, int]:
        return {"count": _work.COMPLETED.value}

    return app


app = create_app(_work.kind_from_env(), log_dir=_work.log_dir_from_env())

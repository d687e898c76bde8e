# The seed endpoint on Quart-Trio.
#
# Quart has no per-request BackgroundTasks: ``app.add_background_task`` starts the task at once in
# the app's nursery (``def`` tasks in a worker thread), so tasks overlap the reply instead of
# following it. That is Quart's idiom for the job, so it is what we measure.
from quart import request
from quart_trio import QuartTrio

from benchmarks._types import ASGIApp
from benchmarks.apps import _work


async def _extra(email: str) -> dict[str, str]:
    return {"message": "extra"}


def create_app(kind: str, *, log_dir: str | None = None, extra_routes: int = 0) -> ASGIApp:
    """Build the Quart-Trio app; ``extra_routes`` dummy routes are registered before the seed."""
    tasks = _work.task_set(kind, log_dir)
    app = QuartTrio(__name__)

    for i in range(extra_routes):
        app.add_url_rule(f"/extra-{i}/<email>", f"extra_{i}", _extra, methods=["POST"])

    @app.post("/send-notification/<email>")
    async def send_notification(email: str) -> dict[str, str]:
        q = request.args.get("q")
        if tasks.enabled:
            if q:
                app.add_background_task(tasks.write_log, f"found query: {q}")
            app.add_background_task(tasks.write_notification, email, message="some notification")
        return {"message": "Message sent"}

    @app.get("/count")
    async def count() -> dict[str, int]:
        return {"count": _work.COMPLETED.value}

    return app


app = create_app(_work.kind_from_env(), log_dir=_work.log_dir_from_env())

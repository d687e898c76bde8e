"""The smallest background task: ``POST /process/`` logs "Processing started" afterwards."""

import os

from triobg import App, BackgroundTasks

app = App()


def log_path() -> str:
    return os.path.join(os.environ.get("TRIOBG_EXAMPLES_DIR", "."), "log.txt")


def write_to_log(message: str) -> None:
    with open(log_path(), mode="a") as log:
        log.write(message + "\n")


@app.post("/process/")
async def process_data(background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(write_to_log, "Processing started")
    return {"message": "Processing started"}

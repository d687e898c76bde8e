"""The smallest background task: ``POST /process/`` logs "Processing started" afterwards."""

from triobg import App, BackgroundTasks

app = App()


def write_to_log(message: str) -> None:
    with open("log.txt", mode="a") as log:
        log.write(message + "\n")


@app.post("/process/")
async def process_data(background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(write_to_log, "Processing started")
    return {"message": "Processing started"}

# The upload benchmark's triobg app: take one file, answer with its size; and /ping.
from triobg import App, UploadFile, UploadLimits

app = App(upload_limits=UploadLimits(max_body_size=1 << 30, max_file_size=1 << 30))


@app.post("/upload")
async def upload(file: UploadFile) -> int:
    return file.size


@app.get("/ping")
async def ping() -> str:
    return "pong"

# The upload benchmark's FastAPI app (the peer): the same two routes, as FastAPI users write
# them. Starlette parses the body with python-multipart into a SpooledTemporaryFile.
from fastapi import FastAPI, UploadFile

app = FastAPI()


@app.post("/upload")
async def upload(file: UploadFile) -> int:
    return file.size or 0


@app.get("/ping")
async def ping() -> str:
    return "pong"

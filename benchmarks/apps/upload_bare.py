# The upload benchmark's ceiling: a bare ASGI app that counts the body's bytes and drops them
# (no multipart parsing, no disk). What is left is hypercorn's and h11's own cost per byte.


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        return
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/upload":
        # The file's size: the body less the multipart framing the benchmark adds.
        body = str(size - int(dict(scope["headers"]).get(b"x-framing", b"0"))).encode()
    else:
        body = b'"pong"'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})

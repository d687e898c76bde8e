# The floor's work as an ASGI app: the seed's fixed reply, no routing, no tasks. Served by the
# native server it measures the server layer alone (``benchmarks/callgrind_servers.py``): its cost
# above ``h11_floor.py`` is what the ASGI adapter, the scope and the task per request add.
from benchmarks._types import Receive, Scope, Send

_BODY = b'{"message":"Message sent"}'
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_BODY))],
}
_REPLY = {"type": "http.response.body", "body": _BODY}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every request with the fixed reply; lifespan is acknowledged."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send(_START)
    await send(_REPLY)

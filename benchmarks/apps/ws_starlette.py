# The WebSocket benchmark endpoints on Starlette (anyio on trio): the same as ``ws_triobg.py``.
#
# Starlette has no socket-owned nursery, so the reader and the writer share a trio nursery
# opened by hand, and the reader cancels it when the client leaves.
import trio
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

inboxes: set[trio.MemorySendChannel[str]] = set()


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


async def forward(websocket: WebSocket, messages: trio.MemoryReceiveChannel[str]) -> None:
    async for text in messages:
        await websocket.send_text(text)


async def room(websocket: WebSocket) -> None:
    await websocket.accept()
    inbox, messages = trio.open_memory_channel[str](1024)
    inboxes.add(inbox)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward, websocket, messages)
            try:
                while True:
                    text = await websocket.receive_text()
                    count = int(text.split()[1])
                    for n in range(count):
                        for member in list(inboxes):
                            member.send_nowait("done" if n == count - 1 else f"message {n}")
            except WebSocketDisconnect:
                pass
            nursery.cancel_scope.cancel()
    finally:
        inboxes.discard(inbox)


app = Starlette(routes=[WebSocketRoute("/echo", echo), WebSocketRoute("/room", room)])

# The WebSocket benchmark endpoints on triobg: an echo, and a room that fans messages out.
#
# ``/echo`` sends back every message. ``/room`` members each get a bounded inbox (as in
# ``examples/chat.py``); a member that sends ``go N`` makes the server broadcast N messages to
# every member, the last one ``done``. ``ws_starlette.py`` does exactly the same on Starlette.
import trio

from triobg import App, WebSocket

app = App()
inboxes: set[trio.MemorySendChannel[str]] = set()


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for message in websocket:
        await websocket.send(message)


async def forward(websocket: WebSocket, messages: trio.MemoryReceiveChannel[str]) -> None:
    async for text in messages:
        await websocket.send_text(text)


@app.websocket("/room")
async def room(websocket: WebSocket) -> None:
    await websocket.accept()
    inbox, messages = trio.open_memory_channel[str](1024)
    inboxes.add(inbox)
    try:
        async with websocket.open_nursery() as nursery:
            nursery.start_soon(forward, websocket, messages)
            async for text in websocket.iter_text():
                count = int(text.split()[1])
                for n in range(count):
                    for member in list(inboxes):
                        member.send_nowait("done" if n == count - 1 else f"message {n}")
    finally:
        inboxes.discard(inbox)

"""A chat server: WebSocket rooms, a Server-Sent Events feed, and a task after each visit.

Connect to ``ws://127.0.0.1:8000/chat/lobby?name=ada`` and send text: everyone in ``lobby``
gets ``ada: <text>``. ``GET /chat/lobby/events`` follows the same room as Server-Sent Events.
When a visitor leaves, a background task appends ``ada left lobby after 3 messages`` to
``chat.log``, after the socket has closed.

Each member of a room has a bounded memory channel of its own (its *inbox*). Broadcasting puts
a message into every inbox without waiting; a member whose inbox is full is too slow to keep
up and is dropped (its socket closes with 1008), so one slow reader never holds up the room.
"""

from collections import defaultdict
from collections.abc import AsyncIterator

import trio

from triobg import (
    App,
    BackgroundTasks,
    EventSourceResponse,
    Query,
    ServerSentEvent,
    WebSocket,
)

#: Messages a member may fall behind by before it is dropped.
BACKLOG = 32

app = App()


class Room:
    """The members of one chat room: each member's inbox (a memory channel), by its reading end."""

    def __init__(self) -> None:
        self.inboxes: dict[trio.MemoryReceiveChannel[str], trio.MemorySendChannel[str]] = {}

    def join(self) -> trio.MemoryReceiveChannel[str]:
        inbox, messages = trio.open_memory_channel[str](BACKLOG)
        self.inboxes[messages] = inbox
        return messages

    def leave(self, messages: trio.MemoryReceiveChannel[str]) -> None:
        inbox = self.inboxes.pop(messages, None)
        if inbox is not None:
            inbox.close()  # the member reads what is already queued, then its loop ends

    def broadcast(self, text: str) -> None:
        """Queue ``text`` for every member without waiting; drop members that fell behind."""
        for messages, inbox in list(self.inboxes.items()):
            try:
                inbox.send_nowait(text)
            except trio.WouldBlock:
                self.leave(messages)


rooms: defaultdict[str, Room] = defaultdict(Room)


def log_visit(room: str, name: str, count: int) -> None:
    with open("chat.log", mode="a") as file:
        file.write(f"{name} left {room} after {count} messages\n")


async def forward(websocket: WebSocket, messages: trio.MemoryReceiveChannel[str]) -> None:
    """Send what arrives in this member's inbox; if the room dropped us, say why and close."""
    async for text in messages:
        await websocket.send_text(text)
    await websocket.close(1008, "too slow: fell behind the room")


@app.websocket("/chat/{room}")
async def chat(
    websocket: WebSocket,
    room: str,
    tasks: BackgroundTasks,
    name: str = Query(min_length=1, max_length=32),
) -> None:
    await websocket.accept()
    members = rooms[room]
    messages = members.join()
    members.broadcast(f"{name} joined")
    count = 0
    try:
        # The reader (this loop) and the writer (``forward``) share one nursery that the
        # socket owns: when the client leaves, the loop ends and the writer is cancelled.
        async with websocket.open_nursery() as nursery:
            nursery.start_soon(forward, websocket, messages)
            async for text in websocket.iter_text():
                count += 1
                members.broadcast(f"{name}: {text}")
    finally:
        members.leave(messages)
        members.broadcast(f"{name} left")
        # Runs once the socket has closed, like a task after a response.
        tasks.add_task(log_visit, room, name, count)


@app.get("/chat/{room}/events")
async def follow(room: str) -> EventSourceResponse:
    async def feed() -> AsyncIterator[ServerSentEvent]:
        members = rooms[room]
        messages = members.join()  # joined when the stream starts, left when it ends
        try:
            async for text in messages:
                yield ServerSentEvent(text, event="message")
        finally:
            members.leave(messages)

    return EventSourceResponse(feed())

"""``examples/chat.py``: rooms over WebSockets, a slow member dropped, the SSE feed, the log."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from examples import chat
from triobg import WebSocketDisconnect
from triobg.testing import TestClient, WebSocketDenied

WAIT = 5.0


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory the example writes its log to during this test (its working directory)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


class TestChat:
    async def test_members_hear_each_other_and_visits_are_logged_after_close(
        self, out: Path
    ) -> None:
        """Messages reach every member; each visit is logged once its socket has closed."""
        async with TestClient(chat.app) as client:
            with trio.fail_after(WAIT):
                async with client.websocket_connect("/chat/lobby?name=ada") as ada:
                    assert await ada.receive_text() == "ada joined"
                    async with client.websocket_connect("/chat/lobby?name=bob") as bob:
                        assert await ada.receive_text() == "bob joined"
                        assert await bob.receive_text() == "bob joined"
                        await bob.send_text("hello")
                        assert await ada.receive_text() == "bob: hello"
                        assert await bob.receive_text() == "bob: hello"
                    assert await ada.receive_text() == "bob left"
                await client.wait_background()
        # Each visit's task runs after its own socket closed; the two may finish in any order.
        assert sorted((out / "chat.log").read_text().splitlines()) == [
            "ada left lobby after 0 messages",
            "bob left lobby after 1 messages",
        ]
        assert chat.rooms["lobby"].inboxes == {}

    async def test_a_member_that_falls_behind_is_dropped_with_1008(self, out: Path) -> None:
        """A member that stops reading gets what was queued, then a 1008 close; the room goes on."""
        async with TestClient(chat.app) as client:
            with trio.fail_after(WAIT):
                async with (
                    client.websocket_connect("/chat/slow?name=ada") as ada,
                    client.websocket_connect("/chat/slow?name=sleepy") as sleepy,
                ):
                    assert await ada.receive_text() == "ada joined"
                    assert await ada.receive_text() == "sleepy joined"
                    for n in range(100):  # ada keeps up; sleepy reads nothing meanwhile
                        await ada.send_text(str(n))
                        assert await ada.receive_text() == f"ada: {n}"
                    received: list[str] = []

                    async def read_all() -> None:
                        while True:
                            received.append(await sleepy.receive_text())

                    with pytest.raises(WebSocketDisconnect) as dropped:
                        await read_all()
                    assert await ada.receive_text() == "sleepy left"
        assert dropped.value.code == 1008
        assert dropped.value.reason == "too slow: fell behind the room"
        assert 0 < len(received) < 100

    async def test_a_name_is_required(self, out: Path) -> None:
        """Without ?name= the handshake is refused with 422, naming the missing value."""
        async with TestClient(chat.app) as client:
            with pytest.raises(WebSocketDenied) as denied:
                async with client.websocket_connect("/chat/lobby"):
                    pass
        assert denied.value.status_code == 422
        assert denied.value.json()["detail"][0]["loc"] == ["query", "name"]

    async def test_the_room_as_server_sent_events(self, out: Path) -> None:
        """GET /chat/{room}/events follows the room; leaving the stream leaves the room."""
        async with TestClient(chat.app) as client:
            with trio.fail_after(WAIT):
                async with client.stream("GET", "/chat/news/events") as feed:
                    chunks = feed.iter_bytes()
                    async with client.websocket_connect("/chat/news?name=ada") as ada:
                        await ada.send_text("extra!")
                        assert await chunks.__anext__() == b"event: message\ndata: ada joined\n\n"
                        assert await chunks.__anext__() == (
                            b"event: message\ndata: ada: extra!\n\n"
                        )
                await client.wait_background()
        assert chat.rooms["news"].inboxes == {}

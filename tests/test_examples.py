"""Every example in ``examples/`` runs, answers, and writes what it says, in order, afterwards.

Each example writes to plain relative paths (``log.txt``), as a user's app would; each test runs
with its own ``tmp_path`` as the working directory (``def`` tasks run in worker threads, which
share the process's working directory, so they write there too). Requests go through
``Witness``, which looks at that directory at the instant the app sends the last byte of its
response: whatever a test finds written there was written *before* the response was complete.
For every example that set must be empty, and the files are checked again once
``wait_background()`` has let the tasks finish. Some tests also hold a task on a gate to show
the state a client can observe while the task is still running.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import types
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from examples import (
    accepted_file,
    dependency_tasks,
    durable_tasks,
    items,
    process,
    send_notification,
    sync_and_async,
    task_failures,
    upload,
    yield_dependency,
)
from triobg import App, BackgroundRunner, SQLiteTaskStore
from triobg.testing import TestClient

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def read_outputs(directory: Path) -> dict[str, str]:
    """The finished files of ``directory`` (not ``*.tmp``), by name."""
    return {
        path.name: path.read_text()
        for path in sorted(directory.iterdir())
        if path.is_file() and path.suffix != ".tmp"
    }


@attrs.define
class Witness:
    """An ASGI wrapper that records the output directory as each response completes."""

    app: App
    directory: Path
    at_response: list[dict[str, str]] = attrs.field(factory=list)

    @property
    def background(self) -> BackgroundRunner:
        # TestClient reports task failures through the app's runner; expose the wrapped one.
        return self.app.background

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        async def watch(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # The client has the whole response and the pipeline has not got control back
                # yet, so no task of this request can have started.
                self.at_response.append(read_outputs(self.directory))

        await self.app(scope, receive, watch if scope["type"] == "http" else send)


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory the examples write to during this test: the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Gate:
    """Holds a ``def`` task in its worker thread until the test opens the gate."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self.reached = threading.Event()

    def wrap(self, func: Callable[..., None]) -> Callable[..., None]:
        def held(*args: Any, **kwargs: Any) -> None:
            self.reached.set()
            if not self._open.wait(timeout=10):
                raise TimeoutError("the test never opened the gate")
            func(*args, **kwargs)

        return held

    def open(self) -> None:
        self._open.set()


@pytest.fixture
def gate() -> Iterator[Gate]:
    made = Gate()
    yield made
    made.open()  # never leave a worker thread waiting, even when the test failed


class TestSendNotification:
    async def test_writes_the_notification_after_the_response(self, out: Path) -> None:
        """The front page's example answers 200 at once and writes its line afterwards."""
        witness = Witness(send_notification.app, out)
        async with TestClient(witness) as client:
            response = await client.post("/send-notification/you@example.com")
            assert response.status_code == 200
            assert response.json() == {"message": "Notification sent in the background"}
            await client.wait_background()
        assert witness.at_response == [{}]
        assert read_outputs(out) == {
            "log.txt": "notification for you@example.com: some notification"
        }

    async def test_client_can_see_the_response_while_the_task_is_still_running(
        self, out: Path, gate: Gate, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With the task held, the response is already complete and nothing is logged yet."""
        monkeypatch.setattr(
            send_notification,
            "write_notification",
            gate.wrap(send_notification.write_notification),
        )
        async with TestClient(send_notification.app) as client:
            response = await client.post("/send-notification/you@example.com")
            assert response.status_code == 200
            await trio.to_thread.run_sync(gate.reached.wait, 10)
            assert read_outputs(out) == {}
            gate.open()
            await client.wait_background()
        assert read_outputs(out) == {
            "log.txt": "notification for you@example.com: some notification"
        }


class TestDependencyTasks:
    async def test_dependency_task_runs_before_handler_task(self, out: Path) -> None:
        """Tasks from the dependency and the handler share one object and run in added order."""
        witness = Witness(dependency_tasks.app, out)
        async with TestClient(witness) as client:
            response = await client.post(
                "/send-notification/you@example.com", params={"q": "hello"}
            )
            assert response.json() == {"message": "Message sent"}
            await client.wait_background()
        assert witness.at_response == [{}]
        assert read_outputs(out) == {"log.txt": "found query: hello\nmessage to you@example.com\n"}

    async def test_without_a_query_only_the_handler_task_runs(self, out: Path) -> None:
        """No ``q``: the dependency adds nothing, the handler's line is the only one."""
        async with TestClient(dependency_tasks.app) as client:
            await client.post("/send-notification/you@example.com")
            await client.wait_background()
        assert read_outputs(out) == {"log.txt": "message to you@example.com\n"}


class TestSyncAndAsync:
    async def test_real_sleeps_in_thread_and_event_loop(
        self, out: Path, autojump_clock: trio.testing.MockClock
    ) -> None:
        """The unpatched example: blocking task in a thread, then the async one, after the response.

        ``time.sleep(0.5)`` really sleeps in its worker thread; the virtual clock only makes
        ``trio.sleep(1)`` instant.
        """
        witness = Witness(sync_and_async.app, out)
        async with TestClient(witness) as client:
            response = await client.post(
                "/send-notification/you@example.com", params={"message": "hi"}
            )
            assert response.json() == {"message": "Notification sending initiated in background"}
            answered_at = trio.current_time()
            await client.wait_background()
            # The async task's second went by on the virtual clock, after the response.
            assert trio.current_time() - answered_at >= 1
        assert witness.at_response == [{}]
        assert read_outputs(out) == {
            "log.txt": "Notification sent to you@example.com: hi\n"
            "Email sent to you@example.com: 'Subject: Notification\\n\\nhi'\n"
        }

    @pytest.fixture
    def slept(self, monkeypatch: pytest.MonkeyPatch) -> list[float]:
        """Replace the example's ``time`` with one whose ``sleep`` only records the duration."""
        durations: list[float] = []
        monkeypatch.setattr(sync_and_async, "time", types.SimpleNamespace(sleep=durations.append))
        return durations

    @pytest.mark.parametrize(
        ("query", "answer", "log"),
        [
            ({"q": "triobg"}, "Processing query: triobg", "Query received: triobg\n"),
            ({}, "No query provided", None),
        ],
    )
    async def test_query_dependency_adds_a_task_only_for_a_query(
        self,
        out: Path,
        slept: list[float],
        query: dict[str, str],
        answer: str,
        log: str | None,
    ) -> None:
        """``get_query`` adds ``write_log`` only when ``q`` is present; the handler adds none."""
        witness = Witness(sync_and_async.app, out)
        async with TestClient(witness) as client:
            response = await client.post("/query/", params=query)
            assert response.json() == {"message": answer}
            await client.wait_background()
        assert witness.at_response == [{}]
        assert read_outputs(out) == ({"log.txt": log} if log else {})
        assert slept == ([0.5] if log else [])

    async def test_message_is_required(self, out: Path) -> None:
        """``message`` is a required query parameter: 422, and no task is added."""
        async with TestClient(sync_and_async.app) as client:
            response = await client.post("/send-notification/you@example.com")
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["query", "message"]
            await client.wait_background()
        assert read_outputs(out) == {}


class TestProcess:
    async def test_logs_processing_started_after_the_response(self, out: Path) -> None:
        """``POST /process/`` answers first, then writes its one line."""
        witness = Witness(process.app, out)
        async with TestClient(witness) as client:
            response = await client.post("/process/")
            assert response.json() == {"message": "Processing started"}
            await client.wait_background()
        assert witness.at_response == [{}]
        assert read_outputs(out) == {"log.txt": "Processing started\n"}


class TestAcceptedFile:
    DATA = b"one two\nthree\n"

    async def test_accepts_with_202_then_reports_when_processed(
        self, out: Path, gate: Gate, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """202 at once; polling says "processing" while the task runs, then gives the report."""
        monkeypatch.setattr(accepted_file, "process_file", gate.wrap(accepted_file.process_file))
        async with TestClient(accepted_file.app) as client:
            response = await client.post("/files", content=self.DATA)
            assert response.status_code == 202
            upload_id = response.json()["id"]
            assert response.json()["status"] == f"/files/{upload_id}"

            await trio.to_thread.run_sync(gate.reached.wait, 10)
            pending = await client.get(f"/files/{upload_id}")
            assert pending.status_code == 202
            assert pending.json() == {"id": upload_id, "status": "processing"}

            gate.open()
            await client.wait_background()
            done = await client.get(f"/files/{upload_id}")
        assert done.status_code == 200
        assert done.json() == {"id": upload_id, "bytes": 14, "lines": 2, "words": 3}
        assert json.loads((out / f"upload-{upload_id}.json").read_text()) == done.json()

    async def test_report_is_written_after_the_response(self, out: Path) -> None:
        """Unpatched: nothing exists when the 202 is complete; one report exists afterwards."""
        witness = Witness(accepted_file.app, out)
        async with TestClient(witness) as client:
            response = await client.post("/files", content=self.DATA)
            await client.wait_background()
        assert witness.at_response == [{}]
        assert list(read_outputs(out)) == [f"upload-{response.json()['id']}.json"]

    async def test_unknown_or_malformed_ids_are_404(self, out: Path) -> None:
        """The id must be 16 hex digits: nothing from the URL reaches a file path otherwise."""
        async with TestClient(accepted_file.app) as client:
            assert (await client.get("/files/..%2F..%2Fetc")).status_code == 404
            assert (await client.get("/files/0123456789abcdef")).status_code == 202


class TestUpload:
    DATA = b"one\ntwo\n" * 40_000  # 320 kB: more than one write to disk

    async def test_accepts_with_202_then_reports_from_the_streamed_file(
        self, out: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """202 at once while the task waits; the task reads the whole upload after the response,
        then the temporary file is gone."""
        release = trio.Event()
        real = upload.process_upload

        async def held(upload_id: str, file: Any, note: str) -> None:
            await release.wait()
            await real(upload_id, file, note)

        monkeypatch.setattr(upload, "process_upload", held)
        witness = Witness(upload.app, out)
        async with TestClient(witness) as client:
            with trio.fail_after(10):
                response = await client.post(
                    "/uploads", data={"note": "n"}, files={"file": ("a.txt", self.DATA)}
                )
                assert response.status_code == 202
                upload_id = response.json()["id"]
                pending = await client.get(f"/uploads/{upload_id}")
                assert pending.json() == {"id": upload_id, "status": "processing"}
                release.set()
                await client.wait_background()
            done = await client.get(f"/uploads/{upload_id}")
        assert witness.at_response[0] == {}
        assert done.json() == {
            "id": upload_id,
            "filename": "a.txt",
            "bytes": len(self.DATA),
            "lines": 80_000,
            "sha256": hashlib.sha256(self.DATA).hexdigest(),
            "note": "n",
        }

    async def test_file_is_required(self, out: Path) -> None:
        """No file is a 422 located at ["body", "file"]."""
        async with TestClient(upload.app) as client:
            response = await client.post("/uploads", data={"note": "n"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "file"]


class TestTaskFailures:
    async def test_failure_is_reported_and_the_next_task_still_runs(
        self, out: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """``notify_crm`` fails: it is logged and reported, ``send_welcome_email`` still runs."""
        witness = Witness(task_failures.app, out)
        async with TestClient(witness, raise_task_errors=False) as client:
            before = (await client.get("/tasks")).json()
            response = await client.post("/signup/you@example.com")
            assert response.json() == {"message": "welcome, you@example.com"}
            await client.wait_background()
            after = (await client.get("/tasks")).json()
        assert witness.at_response[1] == {}  # the POST's response; [0] and [2] are GET /tasks
        assert read_outputs(out) == {
            "failures.txt": "examples.task_failures.notify_crm failed after POST "
            "/signup/you@example.com: ConnectionError: CRM unreachable, "
            "you@example.com not recorded\n",
            "log.txt": "welcome email sent to you@example.com\n",
        }
        assert after["failed"] - before["failed"] == 1
        assert after["completed"] - before["completed"] == 1
        assert after["accepted"] - before["accepted"] == 2
        logged = [r for r in caplog.records if r.name == "triobg.background"]
        assert [r.levelno for r in logged] == [logging.ERROR]
        assert "examples.task_failures.notify_crm" in logged[0].getMessage()

    async def test_test_client_raises_the_failure_by_default(self, out: Path) -> None:
        """In a test, ``wait_background()`` re-raises what the task raised."""
        async with TestClient(task_failures.app) as client:
            await client.post("/signup/you@example.com")
            with pytest.raises(ConnectionError, match="CRM unreachable"):
                await client.wait_background()
        assert "log.txt" in read_outputs(out)


class TestYieldDependency:
    async def test_teardown_runs_after_the_task_that_uses_the_resource(self, out: Path) -> None:
        """The mailer is connected before the response, used by the task, then closed."""
        witness = Witness(yield_dependency.app, out)
        async with TestClient(witness) as client:
            response = await client.post("/invite/you@example.com")
            assert response.json() == {"message": "invitation to you@example.com on its way"}
            await client.wait_background()
        assert witness.at_response == [{"log.txt": "mailer connected\n"}]
        assert read_outputs(out) == {
            "log.txt": "mailer connected\n"
            "sent 'You are invited' to you@example.com\n"
            "mailer closed\n"
        }


class TestItems:
    @pytest.fixture(autouse=True)
    def empty_store(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(items, "ITEMS", {})

    async def test_body_path_and_query_parameters(self) -> None:
        """A JSON body becomes an ``Item``; path and query values are converted to their types."""
        async with TestClient(items.app) as client:
            assert (await client.get("/")).json() == {"message": "Hello from triobg"}
            put = await client.put("/items/1", json={"name": "lamp", "price": 12.5})
            assert put.json() == {
                "item_id": 1,
                "item": {"name": "lamp", "price": 12.5, "tags": []},
            }
            read = await client.get("/items/1", params={"q": "lamp"})
            assert read.json()["matches"] is True
            assert (await client.get("/items/2")).status_code == 404

    async def test_every_invalid_input_is_listed_in_one_422(self) -> None:
        """Missing header and out-of-range query are reported together, before any code runs."""
        async with TestClient(items.app) as client:
            response = await client.get("/items", params={"limit": 500})
        assert response.status_code == 422
        assert [error["loc"] for error in response.json()["detail"]] == [
            ["header", "x-token"],
            ["query", "limit"],
        ]

    async def test_dependencies_guard_and_paginate(self) -> None:
        """``require_token`` answers 401 for a wrong token; ``pagination`` slices the list."""
        async with TestClient(items.app) as client:
            for item_id in (1, 2, 3):
                await client.put(f"/items/{item_id}", json={"name": f"n{item_id}", "price": 1})
            denied = await client.get("/items", headers={"x-token": "nope"})
            page = await client.get(
                "/items", headers={"x-token": "secret"}, params={"skip": 1, "limit": 1}
            )
        assert denied.status_code == 401
        assert [entry["item_id"] for entry in page.json()] == [2]


class TestDurableTasks:
    """``durable_tasks``: 202 with an id, stored before it is sent; ``GET /tasks/{id}`` polls."""

    @pytest.fixture(autouse=True)
    def store(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SQLiteTaskStore:
        store = SQLiteTaskStore(tmp_path / "store" / "tasks.sqlite3")
        monkeypatch.setattr(durable_tasks.app.tasks, "store", store)
        return store

    async def test_accepted_then_polled_until_done(self, out: Path) -> None:
        """202 at once (nothing written yet); polling answers 202, then 200 with the result."""
        witness = Witness(durable_tasks.app, out)
        async with TestClient(witness) as client:
            response = await client.post("/send-notification/a@example.com")
            assert response.status_code == 202
            task_id = response.json()["id"]
            assert response.json()["status"] == f"/tasks/{task_id}"
            with trio.fail_after(10):
                while (status := await client.get(f"/tasks/{task_id}")).status_code == 202:
                    assert status.json()["status"] in ("ready", "running")
                    await trio.sleep(0.01)
            assert (await client.get("/tasks/unknown")).status_code == 404
        assert witness.at_response[0] == {}
        assert status.status_code == 200
        assert status.json() == {
            "id": task_id,
            "status": "succeeded",
            "attempts": 1,
            "result": {"sent_to": "a@example.com"},
            "errors": [],
        }
        assert read_outputs(out) == {
            "log.txt": "notification for a@example.com: some notification\n"
        }

    async def test_stored_before_the_202_even_with_no_worker(self, store: SQLiteTaskStore) -> None:
        """Without a lifespan (no worker) the task waits in the store, READY, for a worker."""
        async with TestClient(durable_tasks.app, lifespan=False) as client:
            task_id = (await client.post("/send-notification/b@example.com")).json()["id"]
            status = await client.get(f"/tasks/{task_id}")
        assert status.status_code == 202
        assert status.json()["status"] == "ready"
        record = await store.get(task_id)
        assert record.arguments == (
            '{"notification":{"email":"b@example.com","message":"some notification"}}'
        )

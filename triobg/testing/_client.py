# An in-process test client: drives the ASGI app inside the test's own trio run.
#
# Each request runs the app in a task of the client's nursery, which therefore owns the
# request's background tasks exactly as a server's connection nursery would. A call returns as
# soon as the final response message has been sent, while those tasks may still be running, so
# a test can observe both moments; ``wait_background()`` then waits for the tasks and re-raises
# their failures. Starlette's TestClient cannot do this: it blocks until every task is done
# (starlette#533). Nothing here reads the clock, so ``trio.testing.MockClock`` makes drain
# deadlines instant.
from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http.cookies import SimpleCookie
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import attrs
import trio

from .._background import TaskFailure
from .._headers import Headers
from ._forms import Files, FormFields, encode_form
from ._target import Params, split_target, with_params
from ._websocket import WebSocketTestSession

ASGIApp = Callable[
    [
        dict[str, Any],
        Callable[[], Awaitable[dict[str, Any]]],
        Callable[[dict[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


@attrs.frozen
class TestResponse:
    """A complete response as the client received it."""

    __test__ = False  # not a pytest test class

    status_code: int
    headers: Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


class StreamingTestResponse:
    """A response whose body is read chunk by chunk, as the app sends it."""

    def __init__(self, status_code: int, headers: Headers, call: _Call) -> None:
        self.status_code = status_code
        self.headers = headers
        self._call = call

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Each non-empty body chunk, as the app sends it.

        A plain iterator, not an async generator, so ``break`` out of ``async for`` is fine.
        """
        return _Chunks(self._call)

    async def read(self) -> bytes:
        """The rest of the body."""
        return b"".join([chunk async for chunk in _Chunks(self._call)])


class _Chunks:
    """Body chunks from the app, as an async iterator."""

    def __init__(self, call: _Call) -> None:
        self._call = call

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        while not self._call.body_finished:
            message = await self._call._next()
            self._call.body_finished = not message.get("more_body", False)
            chunk = bytes(message.get("body", b""))
            if chunk:
                return chunk
        raise StopAsyncIteration


class _Call:
    """One request in flight: its ASGI channels and the moments a test may wait for."""

    def __init__(self, body: bytes, buffer: float) -> None:
        self.body = body
        self.body_sent = False
        self.body_finished = False
        self.response_done = trio.Event()
        self.hung_up = trio.Event()  # the response is complete, or the test stopped reading
        self.app_done = trio.Event()
        self.error: BaseException | None = None
        self.scope = trio.CancelScope()  # the owner's handle: cancelled at the drain deadline
        self.to_client, self.from_app = trio.open_memory_channel[dict[str, Any]](buffer)

    async def receive(self) -> dict[str, Any]:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.response_done.is_set():
            raise RuntimeError(f"the app sent {message['type']!r} after the response was complete")
        final = message["type"] == "http.response.body" and not message.get("more_body", False)
        try:
            await self.to_client.send(message)
        except trio.BrokenResourceError:
            # The test stopped reading, as a client that closes its connection: servers accept
            # and drop what is sent after that, and the app learns of it from ``receive``. The
            # checkpoint matters: without it an endless stream would never let that happen.
            await trio.lowlevel.checkpoint()
        if final:
            self.response_done.set()
            self.hung_up.set()

    def leave(self) -> None:
        """The test stopped reading before the end: behave like a closed connection."""
        self.from_app.close()
        self.hung_up.set()

    async def start(self) -> tuple[int, Headers]:
        message = await self._next()
        if message["type"] != "http.response.start":
            raise RuntimeError(f"the app sent {message['type']!r} before http.response.start")
        return int(message["status"]), Headers(list(message.get("headers", [])))

    async def _next(self) -> dict[str, Any]:
        try:
            return await self.from_app.receive()
        except trio.EndOfChannel:
            if self.error is not None:
                raise self.error from None
            raise RuntimeError("the app returned without completing its response") from None


class TestClient:
    """Drive an ASGI app in-process: ``async with TestClient(app) as client:``.

    Args:
        app: The app (usually a ``triobg.App``).
        base_url: Scheme and host the requests appear to come to.
        headers: Sent with every request.
        cookies: Initial cookie jar; ``Set-Cookie`` responses update it.
        wait_for_tasks: Make every call also wait for that request's background tasks and
            teardown (and raise their failures), like Starlette's client, and for the durable
            tasks the app's worker can run by then.
        raise_task_errors: ``wait_background()`` and leaving the ``async with`` raise the
            exception of a failed background task (several: an ``ExceptionGroup``); with
            ``False`` failures are only logged, as in production.
        lifespan: Run the app's lifespan around the ``async with`` block.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: ASGIApp,
        *,
        base_url: str = "http://testserver",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        wait_for_tasks: bool = False,
        raise_task_errors: bool = True,
        lifespan: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        self.app = app
        self.scheme = parts.scheme or "http"
        self.host = parts.netloc or "testserver"
        self.headers = dict(headers or {})
        self.cookies: dict[str, str] = dict(cookies or {})
        self.wait_for_tasks = wait_for_tasks
        self.raise_task_errors = raise_task_errors
        self._use_lifespan = lifespan
        self._state: dict[str, Any] = {}
        self._calls: set[_Call | WebSocketTestSession] = set()
        self._failures: list[TaskFailure] = []
        self._nursery: trio.Nursery | None = None
        self._manager: AbstractAsyncContextManager[Self] | None = None
        self._lifespan_in: trio.MemorySendChannel[dict[str, Any]] | None = None
        self._lifespan_events: dict[str, trio.Event] = {}
        self._lifespan_messages: dict[str, dict[str, Any]] = {}

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        manager = self._manager = self._lifecycle()
        return await manager.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._manager is not None
        await self._manager.__aexit__(exc_type, exc, tb)
        if exc is None:
            self._raise_failures()

    @asynccontextmanager
    async def _lifecycle(self) -> AsyncIterator[Self]:
        # Errors from startup and from the test's own block are carried out of the nursery and
        # re-raised as they are: a test expects ``ValueError``, not an ``ExceptionGroup``.
        listeners = getattr(getattr(self.app, "background", None), "_failure_listeners", None)
        if listeners is not None:
            listeners.append(self._failures.append)
        error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    if self._use_lifespan:
                        await self._lifespan("startup")
                except RuntimeError as startup_error:
                    error = startup_error
                    nursery.cancel_scope.cancel()
                else:
                    try:
                        yield self
                    except BaseException as body_error:
                        error = body_error
                        nursery.cancel_scope.cancel()
                    else:
                        await self._drain()
                        if self._use_lifespan:
                            await self._lifespan("shutdown")
        finally:
            self._nursery = None
            if listeners is not None and self._failures.append in listeners:
                listeners.remove(self._failures.append)
        if error is not None:
            raise error

    async def _drain(self) -> None:
        # As the owner of the request tasks, the client enforces the app's drain deadline the
        # way a server does: wait until then, cancel what is left (the app names each task it
        # loses), and only then run the lifespan shutdown.
        runner = getattr(self.app, "background", None)
        if runner is None or not self._calls:
            return
        with trio.move_on_at(runner.begin_drain()):
            for call in list(self._calls):
                await call.app_done.wait()
        for call in list(self._calls):
            call.scope.cancel()
        for call in list(self._calls):
            await call.app_done.wait()

    async def _lifespan(self, phase: str) -> None:
        assert self._nursery is not None
        if self._lifespan_in is None:
            self._lifespan_in, inbox = trio.open_memory_channel[dict[str, Any]](2)
            for name in ("startup", "shutdown"):
                self._lifespan_events[name] = trio.Event()
            await self._nursery.start(self._run_lifespan, inbox)
        await self._lifespan_in.send({"type": f"lifespan.{phase}"})
        await self._lifespan_events[phase].wait()
        message = self._lifespan_messages.get(phase)
        if message is not None and message["type"].endswith(".failed"):
            raise RuntimeError(f"lifespan {phase} failed: {message.get('message', '')}")

    async def _run_lifespan(
        self,
        inbox: trio.MemoryReceiveChannel[dict[str, Any]],
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self._state}

        async def receive() -> dict[str, Any]:
            try:
                return await inbox.receive()
            except trio.EndOfChannel:
                await trio.sleep_forever()
                raise AssertionError("unreachable") from None

        async def send(message: dict[str, Any]) -> None:
            phase = message["type"].split(".")[1]
            self._lifespan_messages[phase] = message
            self._lifespan_events[phase].set()

        task_status.started()
        try:
            await self.app(scope, receive, send)
        finally:
            for phase, event in self._lifespan_events.items():
                if not event.is_set():
                    self._lifespan_messages.setdefault(
                        phase, {"type": f"lifespan.{phase}.failed", "message": "app returned"}
                    )
                    event.set()

    # --- requests --------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: FormFields | None = None,
        files: Files | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> TestResponse:
        """Send one request and return once its response is complete (tasks may still run).

        ``path`` is percent-encoded as a client would send it (``"/a b"`` arrives with
        ``raw_path`` ``b"/a%20b"`` and ``path`` ``"/a b"``; escapes already written are kept);
        ``params=`` is added to its query, a list value repeating the key, as httpx does.
        ``data=`` sends a form (urlencoded; a list value repeats the field) and ``files=`` a
        ``multipart/form-data`` body with those fields and files, as httpx takes them:
        ``files={"upload": ("a.txt", b"bytes", "text/plain")}``.
        """
        call = self._start(
            method, path, params, json, content, data, headers, cookies, buffer=64, files=files
        )
        status, response_headers = await call.start()
        body = b"".join([chunk async for chunk in _Chunks(call)])
        self._store_cookies(response_headers)
        if self.wait_for_tasks:
            await call.app_done.wait()
            await self._wait_durable()
            self._raise_failures()
        if call.error is not None:
            raise call.error
        return TestResponse(status, response_headers, body)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[StreamingTestResponse]:
        """``async with client.stream("GET", "/feed") as response:`` then ``iter_bytes()``.

        The app waits for the test to read each chunk (no buffering), so a test can check what
        has happened between two chunks.
        """
        call = self._start(method, path, params, json, content, None, headers, None, buffer=0)
        status, response_headers = await call.start()
        self._store_cookies(response_headers)
        response = StreamingTestResponse(status, response_headers, call)
        try:
            yield response
        finally:
            if not call.response_done.is_set():
                call.leave()

    async def get(self, path: str, **kwargs: Any) -> TestResponse:
        return await self.request("GET", path, **kwargs)

    async def head(self, path: str, **kwargs: Any) -> TestResponse:
        return await self.request("HEAD", path, **kwargs)

    async def options(self, path: str, **kwargs: Any) -> TestResponse:
        return await self.request("OPTIONS", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> TestResponse:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> TestResponse:
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return await self.request("DELETE", path, **kwargs)

    @asynccontextmanager
    async def websocket_connect(
        self,
        path: str,
        *,
        subprotocols: Sequence[str] = (),
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> AsyncIterator[WebSocketTestSession]:
        """``async with client.websocket_connect("/ws") as ws:`` once the app has accepted.

        Leaving the block closes the socket (1000) if it is still open; the app's background
        tasks may still be running then (``wait_background()`` waits for them).

        Raises:
            triobg.WebSocketDisconnect: the app closed instead of accepting (its code).
            WebSocketDenied: the app refused the handshake with an HTTP response.
        """
        if self._nursery is None:
            raise RuntimeError("use the client inside 'async with TestClient(app) as client:'")
        http_scope = self._start_scope("GET", path, params, b"", [], headers, cookies)
        scope = {
            **{k: v for k, v in http_scope.items() if k != "method"},
            "type": "websocket",
            "scheme": "wss" if self.scheme == "https" else "ws",
            "subprotocols": list(subprotocols),
            "extensions": {"websocket.http.response": {}},
        }
        session = WebSocketTestSession(self.app, scope)
        self._calls.add(session)

        async def run() -> None:
            try:
                await session.run_app()
            finally:
                self._calls.discard(session)

        self._nursery.start_soon(run)
        await session._connect()
        async with session:
            yield session

    async def wait_background(self) -> None:
        """Wait until every request sent so far has finished its background tasks and teardown,
        and the app's worker has run every durable task it could start by then.

        A durable task that failed is not raised here (read its ``errors`` with
        ``app.tasks.get``); one waiting for its ``run_after`` or a retry's backoff is not
        waited for.

        Raises:
            Exception: the exception of a background task that failed (an ``ExceptionGroup``
                for several), unless the client was made with ``raise_task_errors=False``.
        """
        for call in list(self._calls):
            await call.app_done.wait()
        await self._wait_durable()
        self._raise_failures()

    async def _wait_durable(self) -> None:
        worker = getattr(getattr(self.app, "tasks", None), "worker", None)
        if worker is not None:
            await worker.wait_idle()

    # --- plumbing --------------------------------------------------------------------------

    def _start(
        self,
        method: str,
        path: str,
        params: Params | None,
        json: Any,
        content: bytes | str | None,
        data: FormFields | None,
        headers: Mapping[str, str] | None,
        cookies: Mapping[str, str] | None,
        *,
        buffer: float,
        files: Files | None = None,
    ) -> _Call:
        if self._nursery is None:
            raise RuntimeError("use the client inside 'async with TestClient(app) as client:'")
        raw: list[tuple[bytes, bytes]] = []
        body = b""
        if json is not None:
            body = jsonlib.dumps(json).encode()
            raw.append((b"content-type", b"application/json"))
        elif data is not None or files is not None:
            body, form_type = encode_form(data, files)
            raw.append((b"content-type", form_type.encode()))
        elif content is not None:
            body = content.encode() if isinstance(content, str) else content
        if body:
            raw.append((b"content-length", str(len(body)).encode()))
        scope = self._start_scope(method, path, params, body, raw, headers, cookies)
        call = _Call(body, buffer)
        self._calls.add(call)
        self._nursery.start_soon(self._run_app, scope, call)
        return call

    def _start_scope(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: bytes,
        body_headers: list[tuple[bytes, bytes]],
        headers: Mapping[str, str] | None,
        cookies: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        path, raw_path, query_string = split_target(with_params(path, params))
        raw: list[tuple[bytes, bytes]] = [
            (b"host", self.host.encode()),
            (b"user-agent", b"triobg-testclient"),
            *body_headers,
        ]
        merged = {**self.headers, **(headers or {})}
        names = {name.lower().encode() for name in merged}
        raw = [(k, v) for k, v in raw if k not in names]
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in merged.items())
        jar = {**self.cookies, **(cookies or {})}
        if jar:
            raw.append((b"cookie", "; ".join(f"{k}={v}" for k, v in jar.items()).encode()))
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": self.scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": query_string,
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 50000),
            "server": (self.host.partition(":")[0], 80),
            "state": dict(self._state),
        }

    async def _run_app(self, scope: dict[str, Any], call: _Call) -> None:
        try:
            with call.scope:
                async with call.to_client:
                    try:
                        await self.app(scope, call.receive, call.send)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        raise
                    except Exception as error:
                        # Recorded before the channel closes (a checkpoint), or the reader
                        # waking at its end would report "returned without a response".
                        call.error = error
                        raise
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the test closed a stream early; the app saw its send fail
        except Exception as error:  # surfaced to the caller, not as a nursery crash
            call.error = error
        finally:
            call.app_done.set()
            self._calls.discard(call)

    def _store_cookies(self, headers: Headers) -> None:
        for header in headers.getlist("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def _raise_failures(self) -> None:
        if not self._failures or not self.raise_task_errors:
            return
        failures, self._failures[:] = list(self._failures), []
        errors = [f.exception for f in failures]
        if len(errors) == 1 and isinstance(errors[0], Exception):
            raise errors[0]
        raise BaseExceptionGroup("background tasks failed", errors)

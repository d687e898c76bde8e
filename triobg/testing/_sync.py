# A blocking test client for tests written the FastAPI/Starlette way: ``SyncTestClient``.
#
# Where it sits: on top of ``_client.py``. The trio-native ``TestClient`` does the work; this
# module runs it in a trio event loop of its own, on a dedicated thread (``_Loop``), and each
# blocking call crosses into that loop through ``trio.from_thread`` with the loop's trio token.
# What it adds on the way is what a synchronous suite expects from Starlette's client:
# redirects followed, an exception no handler answered re-raised in the test, a response with
# ``url`` and ``history``. Background tasks keep the trio client's rule: a call returns once the
# response is complete; ``wait_background()`` (or ``wait_for_tasks=True``) waits for the tasks.
from __future__ import annotations

import codecs
import functools
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager, suppress
from http.cookies import SimpleCookie
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urljoin, urlsplit

import attrs
import trio

from .._headers import Headers
from ._client import ASGIApp, StreamingTestResponse, TestClient, TestResponse
from ._target import Params, with_params
from ._websocket import WebSocketTestSession

T = TypeVar("T")

#: The statuses a redirect is followed for, and the ones after which it becomes a ``GET``
#: (browsers and httpx do the same; 307 and 308 keep the method and the body).
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TO_GET = frozenset({301, 302, 303})
_BODY_ARGUMENTS = ("json", "content", "data", "files")

#: The log message ``triobg``'s default 500 handler writes for an exception nothing answered.
_UNHANDLED = "unhandled %s in %s %s"


@attrs.frozen
class SyncTestResponse(TestResponse):
    """A complete response, as ``SyncTestClient`` returns it after following redirects.

    Attributes:
        url: Where this response came from (after redirects: the last hop).
        history: The redirect responses that led here, oldest first.
    """

    url: str = ""
    history: tuple[TestResponse, ...] = ()

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies this response set (``Set-Cookie``), by name."""
        jar: SimpleCookie = SimpleCookie()
        for header in self.headers.getlist("set-cookie"):
            jar.load(header)
        return {name: morsel.value for name, morsel in jar.items()}


class _CookieJar(dict[str, str]):
    """``client.cookies``: a dict of name to value, with httpx's ``set``, for ported tests."""

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        """Set a cookie (``domain`` and ``path`` are accepted as httpx does, and unused)."""
        self[name] = value


class _ServerErrors(logging.Handler):
    """Collects the exceptions the app answered with its default 500 (and logged).

    The app never lets a handler's exception escape: ``_errors.server_error_handler`` logs it
    on ``triobg.error`` and answers 500. Listening to that record is how the client learns
    which exception it was, without changing the app it tests. Only records written by this
    client's own loop thread count, so other clients (and other apps) cannot leak in.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[BaseException] = []
        self.thread: int | None = None  # the loop's thread, where the pipeline logs

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or record.msg != _UNHANDLED or not record.exc_info:
            return
        if record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


class _Loop:
    """A thread running ``trio.run`` around one ``async with TestClient``, until stopped."""

    def __init__(self, client: TestClient) -> None:
        self._client = client
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._abort: BaseException | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="triobg-SyncTestClient")
        # Daemon: an app that never finishes must not keep the test process alive at exit.
        self._thread.daemon = True

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident

    def start(self) -> None:
        """Start the loop and enter the client (its lifespan startup, if enabled)."""
        self._thread.start()
        self._ready.wait()
        if self._token is None:  # the startup failed: the thread is finishing
            self._thread.join()
            self._raise_error()

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as error:  # handed to the test's thread, never lost in this one
            if error is not self._abort:
                self._error = error
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with self._client:
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()
            if self._abort is not None:
                # As an exception leaving ``async with TestClient``: tasks are cancelled and
                # the lifespan shutdown is skipped.
                raise self._abort

    def call(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run ``function()`` in the loop and wait for its result (or its exception)."""
        if self._token is None or not self._thread.is_alive():
            raise RuntimeError("this SyncTestClient has been closed")
        return trio.from_thread.run(function, trio_token=self._token)

    def stop(self, abort: BaseException | None = None) -> None:
        """Leave the client (drain, lifespan shutdown) and end the thread; raise its errors."""
        if self._thread.is_alive() and self._token is not None:
            self._abort = abort
            assert self._stop is not None
            self._token.run_sync_soon(self._stop.set)
            self._thread.join()
        self._raise_error()

    def stop_soon(self) -> None:
        """Ask the loop to finish without waiting (a client dropped without ``close()``)."""
        if self._thread.is_alive() and self._token is not None and self._stop is not None:
            with suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._stop.set)

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error


class SyncTestClient:
    """A blocking client for the app: ``with SyncTestClient(app) as client: client.get("/")``.

    It lets a test suite written for FastAPI's (Starlette's) ``TestClient`` run by changing its
    imports. The app runs in a trio event loop on a thread of the client's own, driven by the
    trio-native :class:`TestClient`, so what the app sees is exactly what it sees there.

    The lifespan runs around the ``with`` block, as with Starlette. Without ``with``
    (``client = SyncTestClient(app)`` at module level) the first request starts the loop
    *without* the lifespan, and ``close()`` ends it: it waits for the background tasks
    (up to the app's drain deadline) and raises their failures. A client never closed is
    abandoned at interpreter exit (its thread is a daemon); the app still logs task failures.

    Background tasks: a call returns as soon as its response is complete, while that request's
    tasks may still run (Starlette's client waits for them instead). ``wait_background()``
    waits for them and raises their failures; ``wait_for_tasks=True`` makes every call wait.
    Leaving the ``with`` block waits for them too.

    Args:
        app: The app (usually a ``triobg.App``; any ASGI app works).
        base_url: Scheme and host the requests appear to come to.
        headers: Sent with every request (``client.headers`` may be changed later).
        cookies: Initial cookie jar; ``Set-Cookie`` responses update it (``client.cookies``).
        raise_server_exceptions: Re-raise in the test an exception the app answered with its
            default 500 (no exception handler of the app took it), and one escaping an ASGI
            app; with ``False`` the test gets the 500 response instead.
        follow_redirects: Follow redirects to this client's own scheme and host (others
            cannot be reached: their redirect is returned as it is). A request may override it.
        max_redirects: How many redirects one call follows before raising ``RuntimeError``.
        wait_for_tasks: Make every call also wait for that request's background tasks.
        raise_task_errors: ``wait_background()`` and leaving the block raise a failed task's
            exception; with ``False`` failures are only logged, as in production.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: ASGIApp,
        *,
        base_url: str = "http://testserver",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        raise_server_exceptions: bool = True,
        follow_redirects: bool = True,
        max_redirects: int = 20,
        wait_for_tasks: bool = False,
        raise_task_errors: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        self.app = app
        self.base_url = base_url
        self.scheme = parts.scheme or "http"
        self.host = parts.netloc or "testserver"
        self._headers: dict[str, str] = dict(headers or {})
        self._cookies = _CookieJar(cookies or {})
        self.raise_server_exceptions = raise_server_exceptions
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.wait_for_tasks = wait_for_tasks
        self.raise_task_errors = raise_task_errors
        self._loop: _Loop | None = None
        self._client: TestClient | None = None
        self._errors = _ServerErrors()
        self._finalizer: weakref.finalize[..., Any] | None = None
        self._opening = threading.Lock()

    @property
    def headers(self) -> dict[str, str]:
        """Sent with every request; change it in place or assign a new mapping."""
        return self._headers

    @headers.setter
    def headers(self, value: Mapping[str, str]) -> None:
        self._headers.clear()  # in place: the running trio client holds this very dict
        self._headers.update(value)

    @property
    def cookies(self) -> _CookieJar:
        """The cookie jar: sent with every request, updated by ``Set-Cookie``."""
        return self._cookies

    @cookies.setter
    def cookies(self, value: Mapping[str, str]) -> None:
        self._cookies.clear()
        self._cookies.update(value)

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        _refuse_inside_trio()
        self.close()  # a loop started by an earlier request without ``with`` has no lifespan
        self._open(lifespan=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(abort=exc)

    def close(self) -> None:
        """End the loop: wait for background tasks, run the lifespan shutdown if it started.

        Raises:
            Exception: a background task's failure (``raise_task_errors``), or the shutdown's.
        """
        self._close(abort=None)

    def _open(self, *, lifespan: bool) -> _Loop:
        client = TestClient(
            self.app,
            base_url=f"{self.scheme}://{self.host}",
            wait_for_tasks=self.wait_for_tasks,
            raise_task_errors=self.raise_task_errors,
            lifespan=lifespan,
        )
        # Shared, not copied: the jar and the headers outlive one loop, and a test may change
        # them between calls as it would on Starlette's client.
        client.headers = self._headers
        client.cookies = self._cookies
        loop = _Loop(client)
        error_log = logging.getLogger("triobg.error")
        error_log.addHandler(self._errors)
        try:
            loop.start()
        except BaseException:
            error_log.removeHandler(self._errors)
            raise
        self._loop, self._client = loop, client
        self._errors.thread = loop.thread_id
        self._finalizer = weakref.finalize(self, _forget, loop, self._errors)
        # At interpreter exit a client never closed is left as it is: starting a drain while
        # the interpreter tears down could only produce noise. (Its daemon thread just stops.)
        self._finalizer.atexit = False
        return loop

    def _close(self, *, abort: BaseException | None) -> None:
        loop, self._loop, self._client = self._loop, None, None
        if loop is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        try:
            loop.stop(abort)
        finally:
            logging.getLogger("triobg.error").removeHandler(self._errors)

    def _running(self) -> tuple[_Loop, TestClient]:
        _refuse_inside_trio()
        with self._opening:  # two threads' first calls must not start two loops
            if self._loop is None:
                self._open(lifespan=False)
            loop, client = self._loop, self._client
        assert loop is not None
        assert client is not None
        return loop, client

    # --- requests --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: Any = None,
        files: Any = None,
        follow_redirects: bool | None = None,
        **kwargs: Any,
    ) -> SyncTestResponse:
        """Send one request; return once its response is complete (tasks may still run).

        ``data`` as a mapping is a form, as a string or bytes the raw body (httpx's older
        meaning). ``files`` and any other keyword go to :meth:`TestClient.request` as they
        are. Redirects are followed unless ``follow_redirects`` (here or on the client) is
        false.

        Raises:
            Exception: one the app answered with its default 500, if
                ``raise_server_exceptions``.
            RuntimeError: more than ``max_redirects`` redirects.
        """
        if isinstance(data, str | bytes):
            content, data = data, None
        body = {"json": json, "content": content, "data": data, "files": files}
        arguments = {k: v for k, v in {**body, **kwargs}.items() if v is not None}
        if headers is not None:
            arguments["headers"] = headers
        if cookies is not None:
            arguments["cookies"] = cookies
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        target = self._absolute(url)
        target = with_params(target, params)  # the async client's encoding, httpx's
        response = self._send(method, target, arguments)
        history: list[TestResponse] = []
        while follow and response.status_code in REDIRECTS and "location" in response.headers:
            next_url = urljoin(target, response.headers["location"])
            parts = urlsplit(next_url)
            if (parts.scheme, parts.netloc) != (self.scheme, self.host):
                break  # another site: out of the app's reach, so the test gets the redirect
            if len(history) == self.max_redirects:
                raise RuntimeError(f"more than {self.max_redirects} redirects (last to {next_url})")
            if response.status_code in _TO_GET and method.upper() != "HEAD":
                method = "GET"
                arguments = {k: v for k, v in arguments.items() if k not in _BODY_ARGUMENTS}
            history.append(response)
            target = next_url  # it carries its own query
            response = self._send(method, target, arguments)
        return SyncTestResponse(
            response.status_code,
            response.headers,
            response.content,
            url=target,
            history=tuple(history),
        )

    def _absolute(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            return url
        return urljoin(f"{self.scheme}://{self.host}/", url)

    def _send(self, method: str, url: str, arguments: dict[str, Any]) -> TestResponse:
        loop, client = self._running()
        request = functools.partial(client.request, method, _path_and_query(url), **arguments)
        self._errors.errors.clear()
        try:
            response = loop.call(request)
        except Exception:
            if self.raise_server_exceptions:
                raise
            plain = Headers([(b"content-type", b"text/plain; charset=utf-8")])
            return TestResponse(500, plain, b"Internal Server Error")
        if self._errors.errors and self.raise_server_exceptions:
            error = self._errors.errors[0]
            self._errors.errors.clear()
            raise error
        return response

    def get(self, url: str, **kwargs: Any) -> SyncTestResponse:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> SyncTestResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> SyncTestResponse:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> SyncTestResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> SyncTestResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> SyncTestResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> SyncTestResponse:
        return self.request("DELETE", url, **kwargs)

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[SyncStreamingResponse]:
        """``with client.stream("GET", "/events") as response:`` then ``iter_lines()``.

        The app waits for the test to read each chunk, as with :meth:`TestClient.stream`, so
        an endless stream (server-sent events) can be read a few lines at a time and left.
        Keywords go to :meth:`TestClient.stream` (``params``, ``json``, ``content``,
        ``headers``). Redirects are not followed.
        """
        loop, client = self._running()
        path = _path_and_query(self._absolute(url))
        manager = client.stream(method, path, **kwargs)
        response = loop.call(manager.__aenter__)
        with _leaving(loop, manager):
            yield SyncStreamingResponse(loop, response)

    def wait_background(self) -> None:
        """Block until every request so far has finished its background tasks and teardown.

        Raises:
            Exception: a failed background task's exception (an ``ExceptionGroup`` for
                several), unless the client was made with ``raise_task_errors=False``.
        """
        if self._loop is not None and self._client is not None:
            self._loop.call(self._client.wait_background)

    @contextmanager
    def websocket_connect(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> Iterator[SyncWebSocketSession]:
        """``with client.websocket_connect("/ws") as ws:`` once the app has accepted.

        Leaving the block closes the socket (1000) if it is still open.

        Raises:
            triobg.WebSocketDisconnect: the app closed instead of accepting (its code).
            WebSocketDenied: the app refused the handshake with an HTTP response.
        """
        loop, client = self._running()
        path = _path_and_query(self._absolute(url))
        manager = client.websocket_connect(
            path, subprotocols=subprotocols, params=params, headers=headers, cookies=cookies
        )
        session = loop.call(manager.__aenter__)
        with _leaving(loop, manager):
            yield SyncWebSocketSession(loop, session)


def _path_and_query(url: str) -> str:
    """The request target the app gets for an absolute ``url``: its path and query."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _refuse_inside_trio() -> None:
    # A blocking call would freeze the test's own trio loop (and trio refuses it anyway, with
    # a message that does not say what to use instead).
    if trio.lowlevel.in_trio_run():
        raise RuntimeError(
            "SyncTestClient blocks, so it cannot be used inside trio (an async def test): "
            "use 'async with triobg.testing.TestClient(app) as client:' there"
        )


@contextmanager
def _leaving(loop: _Loop, manager: AbstractAsyncContextManager[Any]) -> Iterator[None]:
    """Exit the trio client's ``async with`` (entered through ``loop``) when the block ends.

    The trio client's managers hold no cancel scope across their ``yield``, so entering one in
    one ``from_thread`` call and leaving it in another is safe.
    """
    try:
        yield
    except BaseException as error:
        if not loop.call(functools.partial(_aexit, manager, error)):
            raise
    else:
        loop.call(functools.partial(_aexit, manager, None))


async def _aexit(manager: AbstractAsyncContextManager[Any], error: BaseException | None) -> bool:
    if error is None:
        return bool(await manager.__aexit__(None, None, None))
    return bool(await manager.__aexit__(type(error), error, error.__traceback__))


class SyncStreamingResponse:
    """A response read as the app sends it: what ``SyncTestClient.stream`` gives.

    Attributes:
        status_code: The response status.
        headers: Its headers.
    """

    def __init__(self, loop: _Loop, response: StreamingTestResponse) -> None:
        self._loop = loop
        self._chunks = response.iter_bytes()
        self.status_code = response.status_code
        self.headers = response.headers

    def iter_bytes(self) -> Iterator[bytes]:
        """Each non-empty body chunk, as the app sends it."""
        while True:
            try:
                yield self._loop.call(self._chunks.__anext__)
            except StopAsyncIteration:
                return

    def iter_text(self) -> Iterator[str]:
        """The chunks decoded as UTF-8 (a character split across chunks is kept whole)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for chunk in self.iter_bytes():
            text = decoder.decode(chunk)
            if text:
                yield text
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest

    def iter_lines(self) -> Iterator[str]:
        """The body's lines, without their line endings, each as soon as it is complete."""
        pending = ""
        for text in self.iter_text():
            *lines, pending = (pending + text).split("\n")
            for line in lines:
                yield line.removesuffix("\r")
        if pending:
            yield pending

    def read(self) -> bytes:
        """The rest of the body."""
        return b"".join(self.iter_bytes())


def _forget(loop: _Loop, errors: _ServerErrors) -> None:
    """A client dropped without ``close()``: let its loop finish, stop listening for it."""
    loop.stop_soon()
    logging.getLogger("triobg.error").removeHandler(errors)


class SyncWebSocketSession:
    """A WebSocket to the app, blocking: what ``SyncTestClient.websocket_connect`` gives.

    Each method is :class:`WebSocketTestSession`'s, waiting for the result.
    """

    def __init__(self, loop: _Loop, session: WebSocketTestSession) -> None:
        self._loop = loop
        self._session = session

    @property
    def subprotocol(self) -> str | None:
        """What the app accepted with, if anything."""
        return self._session.subprotocol

    @property
    def close_code(self) -> int | None:
        """The code the app closed with (``None`` while open)."""
        return self._session.close_code

    def send_text(self, data: str) -> None:
        self._loop.call(functools.partial(self._session.send_text, data))

    def send_bytes(self, data: bytes) -> None:
        self._loop.call(functools.partial(self._session.send_bytes, data))

    def send_json(self, data: Any) -> None:
        self._loop.call(functools.partial(self._session.send_json, data))

    def receive(self) -> str | bytes:
        """The app's next message: ``str`` for text, ``bytes`` for binary."""
        return self._loop.call(self._session.receive)

    def receive_text(self) -> str:
        return self._loop.call(self._session.receive_text)

    def receive_bytes(self) -> bytes:
        return self._loop.call(self._session.receive_bytes)

    def receive_json(self) -> Any:
        return self._loop.call(self._session.receive_json)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Leave, as a client sending a close frame: the app receives the disconnect."""
        self._loop.call(functools.partial(self._session.close, code, reason))

    def wait_closed(self) -> int:
        """Read and drop messages until the app closes; return its close code."""
        return self._loop.call(self._session.wait_closed)

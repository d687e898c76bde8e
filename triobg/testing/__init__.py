"""Testing triobg apps in trio: an in-process client and a live-server helper.

``TestClient`` drives the ASGI app inside your test's trio run, so a test can observe the
moment between a response and its background tasks; ``SyncTestClient`` is its blocking facade
for tests written the FastAPI way; ``serve_live`` runs the app on a real hypercorn server on
127.0.0.1 for end-to-end tests.
"""

from ._client import StreamingTestResponse as StreamingTestResponse
from ._client import TestClient as TestClient
from ._client import TestResponse as TestResponse
from ._http11 import HTTP11Connection as HTTP11Connection
from ._http11 import HTTP11Error as HTTP11Error
from ._http11 import HTTP11Response as HTTP11Response
from ._live import LiveServer as LiveServer
from ._live import serve_live as serve_live
from ._sync import SyncStreamingResponse as SyncStreamingResponse
from ._sync import SyncTestClient as SyncTestClient
from ._sync import SyncTestResponse as SyncTestResponse
from ._sync import SyncWebSocketSession as SyncWebSocketSession
from ._websocket import WebSocketDenied as WebSocketDenied
from ._websocket import WebSocketTestSession as WebSocketTestSession

__all__ = [
    "TestClient",
    "TestResponse",
    "StreamingTestResponse",
    "SyncTestClient",
    "SyncTestResponse",
    "SyncStreamingResponse",
    "SyncWebSocketSession",
    "serve_live",
    "LiveServer",
    "HTTP11Connection",
    "HTTP11Response",
    "HTTP11Error",
    "WebSocketTestSession",
    "WebSocketDenied",
]

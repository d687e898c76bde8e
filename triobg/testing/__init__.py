"""Testing triobg apps in trio: an in-process client and a live-server helper.

``TestClient`` drives the ASGI app inside your test's trio run, so a test can observe the
moment between a response and its background tasks; ``serve_live`` runs the app on a real
hypercorn server on 127.0.0.1 for end-to-end tests.
"""

from ._client import TestClient as TestClient
from ._client import TestResponse as TestResponse

__all__ = ["TestClient", "TestResponse"]

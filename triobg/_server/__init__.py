# triobg's own HTTP/1.1 server on h11, where each connection owns a nursery (issue 21).
#
# Modules, in the order a request meets them: ``_listeners`` (sockets, TLS), ``_connection``
# (the per-connection loop on h11), ``_scope`` (the ASGI scope, pure), ``_cycle`` (one request's
# ``receive``/``send``), ``_lifespan`` (the ASGI lifespan), ``_serve`` (the entry point and the
# graceful shutdown), ``_config`` (limits and timeouts), ``_workers`` (several processes on one
# port).
from ._config import ServerConfig as ServerConfig
from ._serve import serve_native as serve_native

__all__ = ["ServerConfig", "serve_native"]

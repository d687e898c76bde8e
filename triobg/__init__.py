"""triobg: a trio-native ASGI toolkit whose background tasks are owned, drained and never lost.

Everything public is re-exported here; the modules behind it are private.
"""

from ._app import App as App
from ._background import BackgroundRunner as BackgroundRunner
from ._background import BackgroundStatistics as BackgroundStatistics
from ._background import BackgroundTask as BackgroundTask
from ._background import BackgroundTasks as BackgroundTasks
from ._background import BackgroundTasksFull as BackgroundTasksFull
from ._background import TaskFailure as TaskFailure
from ._convert import ErrorDetail as ErrorDetail
from ._durable._memory import MemoryTaskStore as MemoryTaskStore
from ._durable._postgres import PostgresTaskStore as PostgresTaskStore
from ._durable._sqlite import SQLiteTaskStore as SQLiteTaskStore
from ._durable._status import TaskStatus as TaskStatus
from ._durable._store import NewTask as NewTask
from ._durable._store import Preclaim as Preclaim
from ._durable._store import TaskError as TaskError
from ._durable._store import TaskNotFound as TaskNotFound
from ._durable._store import TaskRecord as TaskRecord
from ._durable._store import TaskStatistics as TaskStatistics
from ._durable._store import TaskStore as TaskStore
from ._durable._task import DurableTask as DurableTask
from ._durable._task import TaskResult as TaskResult
from ._durable._tasks import DurableTasks as DurableTasks
from ._exceptions import HTTPException as HTTPException
from ._exceptions import RequestValidationError as RequestValidationError
from ._fileresponse import FileResponse as FileResponse
from ._forms import FormData as FormData
from ._headers import Headers as Headers
from ._headers import MutableHeaders as MutableHeaders
from ._mount import Mount as Mount
from ._mount import NoMatchFound as NoMatchFound
from ._params import Body as Body
from ._params import Cookie as Cookie
from ._params import Depends as Depends
from ._params import DependsInfo as DependsInfo
from ._params import File as File
from ._params import Form as Form
from ._params import Header as Header
from ._params import ParamInfo as ParamInfo
from ._params import Path as Path
from ._params import Query as Query
from ._requests import HTTPConnection as HTTPConnection
from ._requests import QueryParams as QueryParams
from ._requests import Request as Request
from ._requests import RequestLimits as RequestLimits
from ._requests import State as State
from ._response_model import ResponseValidationError as ResponseValidationError
from ._responses import HTMLResponse as HTMLResponse
from ._responses import JSONResponse as JSONResponse
from ._responses import PlainTextResponse as PlainTextResponse
from ._responses import RedirectResponse as RedirectResponse
from ._responses import Response as Response
from ._responses import StreamingResponse as StreamingResponse
from ._responses import same_site_path as same_site_path
from ._routes import Route as Route
from ._routes import RouteOptions as RouteOptions
from ._routes import Router as Router
from ._serve import serve as serve
from ._server import ServerConfig as ServerConfig
from ._sse import EventSourceResponse as EventSourceResponse
from ._sse import ServerSentEvent as ServerSentEvent
from ._staticfiles import StaticFiles as StaticFiles
from ._uploads import UploadFile as UploadFile
from ._uploads import UploadLimits as UploadLimits
from ._url import URL as URL
from ._url import Address as Address
from ._websocket_pipeline import WebSocketSessions as WebSocketSessions
from ._websocket_pipeline import WebSocketStatistics as WebSocketStatistics
from ._websocket_routes import WebSocketRoute as WebSocketRoute
from ._websockets import WebSocket as WebSocket
from ._websockets import WebSocketClose as WebSocketClose
from ._websockets import WebSocketDisconnect as WebSocketDisconnect
from ._websockets import WebSocketLimits as WebSocketLimits
from ._websockets import WebSocketState as WebSocketState

__version__ = "0.1.0.dev0"

__all__ = [
    # application and routing
    "App",
    "Router",
    "Route",
    "RouteOptions",
    "Mount",
    "NoMatchFound",
    # requests and parameters
    "Request",
    "HTTPConnection",
    "URL",
    "Address",
    "RequestLimits",
    "Headers",
    "MutableHeaders",
    "QueryParams",
    "State",
    "Depends",
    "Path",
    "Query",
    "Header",
    "Cookie",
    "Body",
    "Form",
    "File",
    "DependsInfo",
    "ParamInfo",
    # forms and uploads
    "FormData",
    "UploadFile",
    "UploadLimits",
    # responses
    "Response",
    "JSONResponse",
    "PlainTextResponse",
    "HTMLResponse",
    "RedirectResponse",
    "same_site_path",
    "StreamingResponse",
    "FileResponse",
    "EventSourceResponse",
    "ServerSentEvent",
    "StaticFiles",
    # errors
    "HTTPException",
    "RequestValidationError",
    "ResponseValidationError",
    "ErrorDetail",
    # background tasks
    "BackgroundTasks",
    "BackgroundTask",
    "BackgroundRunner",
    "BackgroundStatistics",
    "BackgroundTasksFull",
    "TaskFailure",
    # durable tasks
    "DurableTask",
    "DurableTasks",
    "TaskResult",
    "TaskStatus",
    "TaskError",
    "TaskStatistics",
    "TaskNotFound",
    # durable task stores
    "TaskStore",
    "TaskRecord",
    "NewTask",
    "Preclaim",
    "SQLiteTaskStore",
    "PostgresTaskStore",
    "MemoryTaskStore",
    # WebSockets
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketClose",
    "WebSocketState",
    "WebSocketLimits",
    "WebSocketRoute",
    "WebSocketSessions",
    "WebSocketStatistics",
    # serving
    "ServerConfig",
    "serve",
]


def _fix_module_names() -> None:
    # Tracebacks, reprs and docs should say ``triobg.App``, not ``triobg._app.App``.
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("triobg._"):
            obj.__module__ = "triobg"


_fix_module_names()
del _fix_module_names

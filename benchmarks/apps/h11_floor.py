# The floor for trio + h11: a keep-alive loop that answers every request with the seed's fixed
# reply, no ASGI, no app. What any server on trio and h11 costs at the least; run as
# ``python -m benchmarks.apps.h11_floor PORT``.
from __future__ import annotations

import functools
import sys

import h11
import trio

_BODY = b'{"message":"Message sent"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_BODY))]


async def _serve(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive_some(65536))
                except trio.BrokenResourceError:
                    return
                continue
            if isinstance(event, h11.Request):
                continue
            if isinstance(event, h11.EndOfMessage):
                data = conn.send(h11.Response(status_code=200, headers=_HEADERS))
                data += conn.send(h11.Data(data=_BODY)) + conn.send(h11.EndOfMessage())
                try:
                    await stream.send_all(data)
                except trio.BrokenResourceError:
                    return
                if conn.our_state is not h11.DONE:
                    return
                conn.start_next_cycle()
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return


def main() -> None:
    trio.run(functools.partial(trio.serve_tcp, _serve, int(sys.argv[1]), host="127.0.0.1"))


if __name__ == "__main__":
    main()

# Reading a ``multipart/form-data`` body as it arrives: the loop between the request's body
# stream, the sans-io parser and the files on disk.
#
# ``_forms.read_form`` calls ``read_multipart`` for a multipart request. Chunks come from
# ``Request._chunks`` (which enforces the body size and the minimum body rate), go through
# ``multipart.PushMultipartParser`` (bytes in, events out: a part's headers, its bytes, its
# end), and out as plain fields (kept in memory, bounded) or ``UploadFile``s (written to a
# temporary file from a worker thread, ``flush_size`` bytes at a time). Every limit is checked
# here, where the bytes are counted, and refused with a 400 or 413 that names the part; the
# files already made are the request's (``Request._uploads``) and the pipeline deletes them.
from __future__ import annotations

import contextlib
import typing

import multipart
import trio

from ._exceptions import HTTPException
from ._headers import Headers
from ._uploads import UploadFile, UploadLimits

if typing.TYPE_CHECKING:
    from ._forms import FormData
    from ._requests import Request


async def read_multipart(
    request: Request, boundary: str, limits: UploadLimits, form: FormData
) -> None:
    """Parse the request's multipart body into ``form``, streaming file parts to disk.

    Raises:
        HTTPException: 400 for a body that is not valid multipart (or stops short), 413 for
            a breached limit, 408 for a body that arrives too slowly.
    """
    try:
        parser = multipart.PushMultipartParser(
            boundary,
            max_header_size=limits.max_part_header_size,
            max_header_count=limits.max_part_headers,
            max_segment_count=limits.max_files + limits.max_fields,
            # Header bytes are taken as Latin-1 (never fails) and names are re-read as UTF-8
            # below, so a client that sends Latin-1 file names still gets its upload through.
            header_charset="latin-1",
        )
    except multipart.MultipartError as error:
        raise HTTPException(400, f"invalid multipart boundary: {error}") from None
    reader = _PartReader(request, limits, form)
    try:
        async with contextlib.aclosing(request._chunks(limits.max_body_size)) as chunks:
            async for chunk in chunks:
                for event in parser.parse(chunk):
                    if event is None:
                        await reader.end_part()
                    elif isinstance(event, bytes):
                        await reader.data(event)
                    else:
                        await reader.start_part(event)
        parser.close()  # raises if the body ended before the closing boundary
    except multipart.ParserLimitReached as error:
        raise HTTPException(413, f"multipart body: {_sentence(error)}") from None
    except multipart.MultipartError as error:
        raise HTTPException(400, f"malformed multipart body: {_sentence(error)}") from None


class _PartReader:
    """The part being read and the counts so far; one per body."""

    def __init__(self, request: Request, limits: UploadLimits, form: FormData) -> None:
        self.request = request
        self.limits = limits
        self.form = form
        self.directory = limits.upload_dir()
        self.files = 0
        self.fields = 0
        self.name = ""
        self.upload: UploadFile | None = None
        self.buffer = bytearray()  # a field's value, or a file's bytes not yet written
        self.received = 0  # bytes of the current part

    async def start_part(self, segment: multipart.MultipartSegment) -> None:
        self.name = _utf8(segment.name or "")
        self.buffer = bytearray()
        self.received = 0
        if segment.filename is None:
            self.fields += 1
            if self.fields > self.limits.max_fields:
                raise HTTPException(
                    413, f"too many form fields: more than {self.limits.max_fields}"
                )
            self.upload = None
            return
        self.files += 1
        if self.files > self.limits.max_files:
            raise HTTPException(413, f"too many files: more than {self.limits.max_files}")
        raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in segment.headerlist
        ]
        upload = UploadFile(
            filename=_utf8(segment.filename),
            content_type=segment.content_type,
            headers=Headers(raw_headers),
        )
        # Registered before the file exists: whatever happens next, the request deletes it.
        self.request._uploads.append(upload)
        self.upload = upload
        await trio.to_thread.run_sync(upload._create, self.directory)

    async def data(self, chunk: bytes) -> None:
        self.received += len(chunk)
        upload = self.upload
        if upload is None:
            if self.received > self.limits.max_field_size:
                raise HTTPException(
                    413,
                    f"form field {self.name!r} too large: over {self.limits.max_field_size} bytes",
                )
            self.buffer += chunk
            return
        if self.received > self.limits.max_file_size:
            raise HTTPException(
                413,
                f"file {upload.filename!r} (field {self.name!r}) too large: over "
                f"{self.limits.max_file_size} bytes",
            )
        self.buffer += chunk
        if len(self.buffer) >= self.limits.flush_size:
            await self._flush(upload)

    async def end_part(self) -> None:
        upload = self.upload
        if upload is None:
            self.form._append(self.name, self.buffer.decode("utf-8", errors="replace"))
            return
        if self.buffer:
            await self._flush(upload)
        await trio.to_thread.run_sync(upload._finish)
        upload.size = self.received
        self.form._append(self.name, upload)
        self.upload = None

    async def _flush(self, upload: UploadFile) -> None:
        data, self.buffer = self.buffer, bytearray()
        await trio.to_thread.run_sync(upload._append, data)


def _utf8(text: str) -> str:
    """A header value read as Latin-1, re-read as UTF-8 when its bytes are UTF-8."""
    if text.isascii():
        return text
    raw = text.encode("latin-1", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return text


def _sentence(error: Exception) -> str:
    text = str(error.args[0]) if error.args else type(error).__name__
    return text[:1].lower() + text[1:]

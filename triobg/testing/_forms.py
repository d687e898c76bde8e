# Building form bodies for the test client: ``files=`` and ``data=`` as httpx takes them.
#
# ``TestClient.request`` calls ``encode_form``; the end-to-end tests call ``encode_multipart``
# to put the same bytes on a real socket. Filenames and field names are quoted the way
# browsers do it (the HTML standard: ``"`` and CR/LF percent-escaped), so what a test sends
# is what a browser would.
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import IO, Any
from urllib.parse import urlencode

#: One file as ``files=`` takes it: the content alone (bytes or a binary file), or
#: ``(filename, content)``, ``(filename, content, content_type)`` or
#: ``(filename, content, content_type, {header: value})``.
FileSpec = bytes | IO[bytes] | tuple[Any, ...]
Files = Mapping[str, FileSpec] | Sequence[tuple[str, FileSpec]]
FormFields = Mapping[str, Any]


def encode_form(
    data: FormFields | None, files: Files | None, boundary: str | None = None
) -> tuple[bytes, str]:
    """The body and ``Content-Type`` for ``data=`` (and ``files=``, which makes it multipart)."""
    if files is None:
        return urlencode(_fields(data)).encode(), "application/x-www-form-urlencoded"
    boundary = boundary or os.urandom(16).hex()
    return encode_multipart(data, files, boundary), f"multipart/form-data; boundary={boundary}"


def encode_multipart(data: FormFields | None, files: Files | None, boundary: str) -> bytes:
    """A ``multipart/form-data`` body: the fields first, then the files, in the order given."""
    out: list[bytes] = []
    for name, value in _fields(data):
        out.append(_part_head(boundary, name, None, None, {}))
        out.append(str(value).encode() + b"\r\n")
    items = files.items() if isinstance(files, Mapping) else (files or ())
    for name, spec in items:
        filename, content, content_type, headers = _file(name, spec)
        out.append(_part_head(boundary, name, filename, content_type, headers))
        out.append(content + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def _fields(data: FormFields | None) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for name, value in (data or {}).items():
        if isinstance(value, list | tuple):
            pairs.extend((name, item) for item in value)
        else:
            pairs.append((name, value))
    return pairs


def _file(name: str, spec: FileSpec) -> tuple[str, bytes, str, Mapping[str, str]]:
    if not isinstance(spec, tuple):
        spec = (name, spec)
    filename, content, *rest = spec
    content_type = rest[0] if rest else "application/octet-stream"
    headers = rest[1] if len(rest) > 1 else {}
    if not isinstance(content, bytes | bytearray):
        content = content.read() if hasattr(content, "read") else str(content).encode()
    return filename, bytes(content), content_type, headers


def _quote(value: str) -> str:
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


def _part_head(
    boundary: str,
    name: str,
    filename: str | None,
    content_type: str | None,
    headers: Mapping[str, str],
) -> bytes:
    disposition = f'form-data; name="{_quote(name)}"'
    if filename is not None:
        disposition += f'; filename="{_quote(filename)}"'
    lines = [f"--{boundary}", f"Content-Disposition: {disposition}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.extend(f"{key}: {value}" for key, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode()

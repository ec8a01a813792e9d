"""Uploads held in memory, never written to disk.

Werkzeug spools a file part larger than 500 KB to a temporary file. A signer's photo must not
touch the disk (a seized server's free blocks keep deleted files), so every file part of every
request goes into memory instead; what bounds the memory is the request's size limit, checked
before the body is read (MAX_CONTENT_LENGTH, raised only where a route takes a file).
"""

from __future__ import annotations

import io
from typing import IO

from flask import Request


class InMemoryRequest(Request):
    """A request whose uploaded files are BytesIO objects."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()


def read_upload(request: Request, field: str, limit: int) -> bytes | None:
    """The bytes of the file part ``field`` (None if none was chosen), at most ``limit`` + 1
    bytes of it, so that the caller can tell "too large"; the part is closed and its memory
    let go at once."""
    upload = request.files.get(field)
    if upload is None:
        return None
    try:
        data = upload.read(limit + 1)
    finally:
        upload.close()
    return data if data or upload.filename else None

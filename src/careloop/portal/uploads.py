"""Receiving message attachments: in memory only, never past the size limit.

Django's default handlers write an upload over 2.5 MB to a temporary file, which would
put a patient's document on disk unencrypted. `upload_form` gives a view one handler
that keeps each file in memory and stops keeping it (the rest of its bytes are read
and dropped) once it passes `PORTAL_ATTACHMENT_MAX_BYTES`, or once `MAX_FILES` files
came: such a file is left out of `request.FILES` and named in `oversized(request)`.

Upload handlers must be set before anything reads `request.POST`, and the CSRF check
reads it; so the view is exempted from the middleware's check and checks the token
itself after the handler is in place (Django's documented pattern).
"""

from __future__ import annotations

import functools
from io import BytesIO
from typing import Any

from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from careloop.portal.attachments import MAX_FILES, max_bytes

View = Any


class MemoryCappedUploadHandler(FileUploadHandler):
    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = max_bytes()
        self.files = 0
        self.buffer = BytesIO()
        self.skipped: list[str] = []

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.files += 1
        self.buffer = BytesIO()
        if self.files > MAX_FILES:
            self.skipped.append("too_many")
            raise SkipFile

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if start + len(raw_data) > self.limit:
            self.skipped.append("too_big")
            self.buffer = BytesIO()
            raise SkipFile
        self.buffer.write(raw_data)

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            file=self.buffer,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )


def oversized(request: HttpRequest) -> list[str]:
    """What the handler left out: "too_big" or "too_many", once per file."""
    for handler in request.upload_handlers:
        if isinstance(handler, MemoryCappedUploadHandler):
            return list(handler.skipped)
    return []


def upload_form(view: View) -> View:
    """Apply outside the view's other decorators: memory-only, capped uploads, and the
    CSRF check made after the handler is set."""
    protected = csrf_protect(view)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.upload_handlers = [MemoryCappedUploadHandler(request)]
        response: HttpResponse = protected(request, *args, **kwargs)
        return response

    return csrf_exempt(wrapper)

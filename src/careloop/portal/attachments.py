"""Attachments of secure messages: what is accepted, and how the bytes are kept.

A file is accepted by what its bytes are, never by the name or the type the browser
sent: a PDF, PNG, JPEG or plain-text file, up to `settings.PORTAL_ATTACHMENT_MAX_BYTES`,
whose name's extension agrees with its content. SVG, HTML and XML are refused (they
can carry script), and so is a PDF that names JavaScript, a launch action, an embedded
file or rich media, in its objects or inside its compressed streams. Each refusal has
a reason a patient can act on (`AttachmentRefused.reason`), and nothing is stored.

Accepted bytes are stored encrypted in the database, in pieces of `CHUNK_BYTES`
(base64 in `ThreadAttachmentChunk.data`, an `EncryptedTextField` bound to its row):
careloop has no file store, and the database is already where class-I data is sealed,
rotated and backed up.
"""

from __future__ import annotations

import base64
import re
import uuid
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from careloop.core.clock import now
from careloop.portal.models import ThreadAttachment, ThreadAttachmentChunk, ThreadMessage

CHUNK_BYTES = 256 * 1024
# At most this many files with one message.
MAX_FILES = 5
# A PDF's streams are inflated to look for script; past this many bytes in all, the file
# is refused rather than inflated further (a compression bomb).
PDF_INFLATE_BUDGET = 64 * 1024 * 1024
PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
TEXT = "text/plain"
EXTENSIONS = {
    PDF: (".pdf",),
    PNG: (".png",),
    JPEG: (".jpg", ".jpeg"),
    TEXT: (".txt", ".text", ".log", ".csv"),
}
# PDF names that run or carry something when the file is opened.
PDF_ACTIVE_NAMES = frozenset(
    {b"JavaScript", b"JS", b"Launch", b"EmbeddedFile", b"EmbeddedFiles", b"RichMedia"}
)
_PDF_NAME = re.compile(rb"/([A-Za-z0-9#]+)")
_PDF_HEX = re.compile(rb"#([0-9A-Fa-f]{2})")
_PDF_STREAM = re.compile(rb"stream\r?\n(.*?)endstream", re.DOTALL)
# Markup that makes a file a web page or an image with script when opened.
_TAGS = re.compile(rb"<\s*(svg|script|html|iframe|object|embed|!doctype|\?xml)\b", re.IGNORECASE)
_MARKUP = re.compile(_TAGS.pattern + rb"|javascript:", re.IGNORECASE)
_TEXT_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class AttachmentRefused(Exception):  # noqa: N818 - a refusal with a reason, not a crash
    """The file is not accepted; `reason` says why in words for the person who sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__("attachment refused")
        self.reason = reason


@dataclass(frozen=True)
class Upload:
    """A file as received: its name (class I) and its bytes."""

    name: str
    content: bytes


def max_bytes() -> int:
    return int(settings.PORTAL_ATTACHMENT_MAX_BYTES)


def _pdf_names(data: bytes) -> set[bytes]:
    return {
        _PDF_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), n) for n in _PDF_NAME.findall(data)
    }


def _pdf_has_script(content: bytes) -> bool:
    """Does the PDF name an active feature, in plain objects or in a Flate stream?"""
    if _pdf_names(content) & PDF_ACTIVE_NAMES:
        return True
    budget = PDF_INFLATE_BUDGET
    for stream in _PDF_STREAM.finditer(content):
        inflater = zlib.decompressobj()
        try:
            inflated = inflater.decompress(stream.group(1), budget + 1)
        except zlib.error:
            continue  # not Flate (an image's DCT, say): nothing to read in it
        budget -= len(inflated)
        if budget < 0:
            raise AttachmentRefused(_("This PDF could not be checked. Please send another copy."))
        if _pdf_names(inflated) & PDF_ACTIVE_NAMES:
            return True
    return False


def _is_text(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not _TEXT_CONTROL.search(content)


def sniff(content: bytes) -> str:
    """The allowed type `content` is, or `AttachmentRefused` with the reason."""
    head = content[:1024]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if _TAGS.search(stripped[:512]) or stripped.startswith(b"<"):
        if re.search(rb"<\s*svg\b", content[:65536], re.IGNORECASE):
            raise AttachmentRefused(
                _("SVG images are not accepted: they can contain scripts. Send a PNG or JPEG.")
            )
        raise AttachmentRefused(
            _("Web pages and XML files are not accepted: they can contain scripts.")
        )
    if content.startswith(b"%PDF-"):
        if _pdf_has_script(content):
            raise AttachmentRefused(
                _("This PDF contains a script or an embedded file, which is not accepted.")
            )
        return PDF
    if content.startswith(b"\x89PNG\r\n\x1a\n") and content[12:16] == b"IHDR":
        return PNG
    if content.startswith(b"\xff\xd8\xff"):
        return JPEG
    if _is_text(content):
        if _MARKUP.search(content):
            raise AttachmentRefused(
                _("This text file contains web page code or a script, which is not accepted.")
            )
        return TEXT
    raise AttachmentRefused(
        _("This type of file is not accepted. Send a PDF, a PNG or JPEG picture, or a text file.")
    )


def attachment_check(upload: Upload) -> str:
    """The sniffed content type of an acceptable upload; `AttachmentRefused` otherwise."""
    limit = max_bytes()
    if len(upload.content) > limit:
        raise AttachmentRefused(
            _("This file is larger than %(limit)s MB. Send a smaller file.")
            % {"limit": f"{limit / (1024 * 1024):g}"}
        )
    if not upload.content:
        raise AttachmentRefused(_("This file is empty."))
    if not upload.name.strip() or len(upload.name) > 255:
        raise AttachmentRefused(_("This file needs a name of at most 255 characters."))
    content_type = sniff(upload.content)
    if not upload.name.lower().endswith(EXTENSIONS[content_type]):
        raise AttachmentRefused(
            _("This file's name does not match what it contains. Check the file and try again.")
        )
    return content_type


def safe_filename(name: str) -> str:
    """The last path part of a browser's file name, without control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable() and ch not in '"\r\n').strip()[:255]


def attachment_store(
    *, message: ThreadMessage, upload: Upload, content_type: str
) -> ThreadAttachment:
    """Write one checked upload, encrypted, in pieces. Call inside the message's transaction."""
    pieces = content_pieces(upload.content)
    attachment = ThreadAttachment(
        id=uuid.uuid4(),
        message=message,
        filename=upload.name,
        content_type=content_type,
        size=len(upload.content),
        chunks=len(pieces),
        created_at=now(),
    )
    attachment.save(force_insert=True)
    for index, data in enumerate(pieces):
        piece = ThreadAttachmentChunk(
            id=uuid.uuid4(), attachment=attachment, index=index, data=data
        )
        piece.save(force_insert=True)
    return attachment


def attachment_bytes(attachment: ThreadAttachment) -> bytes:
    """The decrypted content; every piece must be there (else the row is damaged)."""
    pieces = [(p.index, p.data) for p in attachment.pieces.order_by("index")]
    return content_join(
        pieces, chunks=attachment.chunks, size=attachment.size, label=f"attachment {attachment.pk}"
    )


def content_pieces(content: bytes) -> list[str]:
    """`content` as base64 pieces of `CHUNK_BYTES`, one for each encrypted chunk row
    (shared by message attachments and insurance cards, careloop.portal.insurance)."""
    return [
        base64.b64encode(content[start : start + CHUNK_BYTES]).decode("ascii")
        for start in range(0, len(content), CHUNK_BYTES)
    ]


def content_join(pieces: list[tuple[int, str]], *, chunks: int, size: int, label: str) -> bytes:
    """The bytes of `(index, data)` pieces in index order; every piece must be there and
    add up to `size` (else the stored file, named by `label`, is damaged)."""
    if [index for index, _data in pieces] != list(range(chunks)):
        raise ValueError(f"{label} is missing pieces")
    content = b"".join(base64.b64decode(data) for _index, data in pieces)
    if len(content) != size:
        raise ValueError(f"{label} does not have its recorded size")
    return content

"""PDF documents rendered from Django templates with xhtml2pdf (in a worker, never a request)."""

from __future__ import annotations

import hashlib
import io

from django.conf import settings
from django.core.files.base import ContentFile
from django.template.loader import render_to_string
from xhtml2pdf import pisa


class PdfRenderError(RuntimeError):
    pass


def render_pdf(template: str, context: dict) -> bytes:
    html = render_to_string(template, {**context, "seller": settings.SELLER})
    out = io.BytesIO()
    result = pisa.CreatePDF(html, dest=out, encoding="utf-8")
    if result.err:
        raise PdfRenderError(f"xhtml2pdf reported {result.err} error(s) rendering {template}")
    return out.getvalue()


def pdf_file(content: bytes, name: str) -> tuple[ContentFile, str]:
    return ContentFile(content, name=name), hashlib.sha256(content).hexdigest()

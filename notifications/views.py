"""The local mailbox (DEBUG only): what the SMTP sink received, as the customer would see it."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_sameorigin

from chargeflow.localdev.smtp_sink import mailbox_files, read_message

# The HTML part is shown in a sandboxed frame: no scripts, no forms, links open a new tab.
EMAIL_CSP = (
    "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
    "img-src * data:; style-src 'unsafe-inline'"
)


def _require_debug() -> None:
    if not settings.DEBUG:
        raise Http404


def _find(name: str) -> Path:
    path = next((p for p in mailbox_files(settings.MAILBOX_DIR) if p.name == name), None)
    if path is None:
        raise Http404
    return path


def _summary(path: Path, message: EmailMessage) -> dict:
    return {
        "file_name": path.name,
        "from": message.get("From", ""),
        "to": message.get("To", ""),
        "subject": message.get("Subject", ""),
        "date": message.get("Date", ""),
        "kind": message.get("X-ChargeFlow-Kind", ""),
        "order": message.get("X-ChargeFlow-Order", ""),
        "attachments": [
            {"index": index, "name": part.get_filename() or f"attachment-{index}"}
            for index, part in enumerate(message.iter_attachments())
        ],
    }


def mailbox(request):
    _require_debug()
    entries = [
        _summary(path, read_message(path)) for path in reversed(mailbox_files(settings.MAILBOX_DIR))
    ]
    order = request.GET.get("order", "").strip()
    if order:
        entries = [entry for entry in entries if entry["order"] == order]
    # Not "messages": base.html renders that name as django.contrib.messages notices.
    return render(request, "notifications/mailbox.html", {"emails": entries, "order": order})


def mailbox_message(request, name: str):
    """One email: its headers, the HTML part in a frame, the plain-text part, the attachments."""
    _require_debug()
    path = _find(name)
    message = read_message(path)
    text = message.get_body(preferencelist=("plain",))
    context = {
        "message": _summary(path, message),
        "has_html": message.get_body(preferencelist=("html",)) is not None,
        "text": text.get_content() if text is not None else "",
    }
    return render(request, "notifications/mailbox_message.html", context)


@xframe_options_sameorigin
def mailbox_message_html(request, name: str):
    _require_debug()
    body = read_message(_find(name)).get_body(preferencelist=("html",))
    if body is None:
        raise Http404
    response = HttpResponse(body.get_content())
    response["Content-Security-Policy"] = EMAIL_CSP
    return response


def mailbox_attachment(request, name: str, index: int):
    _require_debug()
    attachments = list(read_message(_find(name)).iter_attachments())
    if index >= len(attachments):
        raise Http404
    part = attachments[index]
    response = HttpResponse(part.get_content(), content_type=part.get_content_type())
    filename = (part.get_filename() or f"attachment-{index}").replace('"', "")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response

"""The local mailbox (DEBUG only): what the SMTP sink received, as the customer would see it."""

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render

from chargeflow.localdev.smtp_sink import mailbox_files, read_message


def _require_debug() -> None:
    if not settings.DEBUG:
        raise Http404


def mailbox(request):
    _require_debug()
    entries = []
    for path in reversed(mailbox_files(settings.MAILBOX_DIR)):
        message = read_message(path)
        entries.append(
            {
                "file_name": path.name,
                "to": message.get("To", ""),
                "subject": message.get("Subject", ""),
                "date": message.get("Date", ""),
                "attachments": [part.get_filename() for part in message.iter_attachments()],
            }
        )
    return render(request, "notifications/mailbox.html", {"messages": entries})


def mailbox_message(request, name: str):
    _require_debug()
    path = next((p for p in mailbox_files(settings.MAILBOX_DIR) if p.name == name), None)
    if path is None:
        raise Http404
    body = read_message(path).get_body(preferencelist=("html", "plain"))
    if body is None:
        raise Http404
    if body.get_content_type() == "text/plain":
        return HttpResponse(body.get_content(), content_type="text/plain; charset=utf-8")
    return HttpResponse(body.get_content())

"""Provider tracking webhooks (mounted under /anymail/) -> the email log."""

from anymail.signals import AnymailTrackingEvent, tracking
from django.dispatch import receiver

from notifications.services import email_track


@receiver(tracking, dispatch_uid="notifications.email_tracking")
def on_tracking_event(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    email_track(
        message_id=event.message_id or "",
        event_type=event.event_type or "unknown",
        detail=" ".join(
            str(part)
            for part in (event.reject_reason, event.description, event.mta_response)
            if part
        ),
        at=event.timestamp,
    )

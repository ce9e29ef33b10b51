"""Customer email: templates in the customer's language, sent over SMTP from the outbox.

``render`` turns an outbox row's template + payload into a ``Message``; ``smtp`` sends
it; ``outbox.deliver_pending`` delivers every unsent ``NotificationRow`` exactly once
(see its module docstring for the guarantees and the one duplicate window).
"""

from fairbill.notify.outbox import DeliveryReport, Failure, deliver_forever, deliver_pending
from fairbill.notify.render import TEMPLATES, Message, RenderError, render
from fairbill.notify.smtp import SmtpSettings, send

__all__ = [
    "TEMPLATES",
    "DeliveryReport",
    "Failure",
    "Message",
    "RenderError",
    "SmtpSettings",
    "deliver_forever",
    "deliver_pending",
    "render",
    "send",
]

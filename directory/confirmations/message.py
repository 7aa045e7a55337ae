"""The confirmation email: short, plain text with an HTML twin, the listing as the directory shows it now, one link
per answer, and one-click unsubscribe headers (RFC 8058)."""

from __future__ import annotations

import email.policy
import email.utils
from email.message import EmailMessage

from flask import Flask, render_template

from directory.confirmations import links
from directory.models import ConfirmationRequest, Listing


def build(app: Flask, request: ConfirmationRequest, listing: Listing) -> EmailMessage:
    """The message asking `listing`'s therapist to confirm, for `request`."""
    answers = {action: links.url(app, links.sign(app, request.id, listing.id, action)) for action in links.ACTIONS}
    one_click = links.url(app, links.sign(app, request.id, listing.id, "unsubscribe"), links.ONE_CLICK_PATH)
    context = {"listing": listing, "answers": answers, "days": app.config["CONFIRMATION_LINK_DAYS"],
               "profile": f"{app.config['PUBLIC_BASE_URL'].rstrip('/')}/therapists/{listing.slug}"}
    # Lines up to SMTP's limit: folding a long header that has no spaces (List-Unsubscribe's <URL>) would encode it,
    # and mail clients would no longer read the address.
    # 7-bit bodies: a server without 8BITMIME takes them as they are.
    message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998, cte_type="7bit"))
    message["Subject"] = f"Are you still accepting new clients? ({listing.name})"
    message["From"] = app.config["MAIL_FROM"]
    message["To"] = request.email
    message["Date"] = email.utils.format_datetime(email.utils.localtime())
    message["Message-ID"] = email.utils.make_msgid(
        domain=email.utils.parseaddr(app.config["MAIL_FROM"])[1].rpartition("@")[2] or None)
    message["List-Unsubscribe"] = f"<{one_click}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render_template("email/confirmation.txt", **context))
    message.add_alternative(render_template("email/confirmation.html", **context), subtype="html")
    return message

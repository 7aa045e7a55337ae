"""Outgoing mail: over SMTP when MAIL_SERVER is set, else written as `.eml` files to the instance folder's outbox
(the embedded default, so `make run` shows every message with no mail server)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.policy
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from flask import Flask

OUTBOX = "outbox"
SMTP_TIMEOUT = 30  # seconds: a server that stops answering fails the attempt, which is retried


TRANSIENT = (OSError, smtplib.SMTPException)  # what may pass on a later attempt


class Refused(Exception):
    """The server refused the message for good (a 5xx answer, a bad recipient): retrying would not help."""


def send(app: Flask, message: EmailMessage) -> None:
    """Send a message: SMTP when MAIL_SERVER is set, else into the outbox. Raises Refused when the server refuses it
    for good, and OSError or smtplib.SMTPException for anything that may pass (to be retried)."""
    config = app.config
    if not config["MAIL_SERVER"]:
        _into_outbox(Path(app.instance_path) / OUTBOX, message)
        return
    try:
        if config["MAIL_USE_SSL"]:
            connection: smtplib.SMTP = smtplib.SMTP_SSL(config["MAIL_SERVER"], config["MAIL_PORT"],
                                                        timeout=SMTP_TIMEOUT, context=ssl.create_default_context())
        else:
            connection = smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=SMTP_TIMEOUT)
        with connection:
            if config["MAIL_USE_TLS"]:
                connection.starttls(context=ssl.create_default_context())
            if config["MAIL_USERNAME"]:
                connection.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
            connection.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        # 4xx (greylisting, a full mailbox) may pass later; 5xx is a bounce.
        answer = next(iter(exc.recipients.values()))
        if answer[0] >= 500:
            raise Refused(_refusal(answer)) from exc
        raise
    except smtplib.SMTPDataError as exc:
        if exc.smtp_code >= 500:
            raise Refused(_refusal((exc.smtp_code, exc.smtp_error))) from exc
        raise
    # A refused sender (SMTPSenderRefused) is this server's setting, not the message's: retried, as it may be fixed.


def _refusal(answer: tuple[int, bytes | str]) -> str:
    code, text = answer
    return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}".strip()


def _into_outbox(folder: Path, message: EmailMessage) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    draft = folder / f".{stamp}-{uuid.uuid4().hex}.tmp"
    draft.write_bytes(message.as_bytes())  # by the message's own policy, as SMTP would send it
    draft.rename(folder / f"{draft.name[1:-4]}.eml")  # whole files only: a reader never sees half a message


@dataclasses.dataclass(frozen=True)
class OutboxMessage:
    """A message written to the outbox, as the admin area lists it."""

    name: str
    to: str
    subject: str
    date: str
    text: str


def outbox(app: Flask, limit: int = 100) -> list[OutboxMessage]:
    """The newest messages of the outbox, newest first, with their plain-text body."""
    folder = Path(app.instance_path) / OUTBOX
    found = []
    for path in sorted(folder.glob("*.eml"), reverse=True)[:limit] if folder.exists() else []:
        parsed = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
        body = parsed.get_body(preferencelist=("plain",))
        found.append(OutboxMessage(path.name, str(parsed["To"]), str(parsed["Subject"]), str(parsed["Date"]),
                                   body.get_content() if body is not None else ""))
    return found

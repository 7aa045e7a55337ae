"""A real SMTP server for the mail tests (aiosmtpd on a free port of 127.0.0.1) that keeps what it receives and can
be told to refuse: for a while (451, to be retried) or for good (550)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from helpers import free_port


class Inbox:
    """The messages received, as parsed emails, and the refusals to come."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # the same, as they came over the wire
        self.refuse_next = 0  # this many DATA commands get a 451 before any is accepted
        self.refuse_for_good: set[str] = set()  # recipients refused with a 550
        self.greylist_next = 0  # this many RCPT commands get a 450 (greylisting) before any is accepted
        self._changed = threading.Condition()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802 (aiosmtpd's)
                          options: list[str]) -> str:
        """Refuse the recipients marked so, for good."""
        if address in self.refuse_for_good:
            return "550 5.1.1 No such mailbox here"
        if self.greylist_next:
            self.greylist_next -= 1
            return "450 4.2.0 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's)
        """Keep the message, unless told to refuse it for a while."""
        with self._changed:
            if self.refuse_next:
                self.refuse_next -= 1
                return "451 4.3.0 Try again later"
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            self.raw.append(envelope.content)
            self._changed.notify_all()
        return "250 Message accepted"

    def wait_for(self, count: int, seconds: float = 60) -> list[EmailMessage]:
        """The messages once there are `count`; an AssertionError after `seconds`."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while len(self.messages) < count and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            assert len(self.messages) >= count, f"{len(self.messages)} of {count} messages after {seconds} s"
            return list(self.messages)


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """An SMTP server on a free port of 127.0.0.1 while the block runs: its inbox and port."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()

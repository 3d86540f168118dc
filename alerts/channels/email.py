"""E-mail over SMTP (thư điện tử): STARTTLS or implicit TLS, optional login, HTML + plain text."""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import ClassVar

from alerts.channels.base import (
    Channel,
    OutboxMessage,
    PermanentDeliveryError,
    RenderedAlert,
    RetryableDeliveryError,
    register_channel,
)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "duluan@localhost"
    sender_name: str = "Duluan – Trung tâm IOC"
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    implicit_tls: bool = False
    verify_tls: bool = True
    ca_file: str | None = None  # a private CA for an internal relay; default: the system store
    timeout_s: float = 20.0


_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A stable Message-ID: a duplicate that slipped through is recognisable by mail clients."""
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def build_email(config: SmtpConfig, message: OutboxMessage, rendered: RenderedAlert) -> EmailMessage:
    domain = config.sender.rpartition("@")[2] or "localhost"
    mail = EmailMessage()
    mail["Subject"] = rendered.subject
    mail["From"] = Address(display_name=config.sender_name, addr_spec=config.sender)
    mail["To"] = message.recipient
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = message_id_for(message.idempotency_key, domain)
    mail["X-Duluan-Idempotency-Key"] = message.idempotency_key
    mail.set_content(rendered.text)
    mail.add_alternative(rendered.html, subtype="html")
    return mail


def _smtp_failure(code: int, detail: str) -> Exception:
    return (PermanentDeliveryError if code >= 500 else RetryableDeliveryError)(f"SMTP {code}: {detail}")


@register_channel
class EmailChannel(Channel):
    name: ClassVar[str] = "email"

    @classmethod
    def recipient_problem(cls, recipient: str) -> str | None:
        return (
            None
            if _ADDRESS.match(recipient)
            else f"{recipient!r} is not an e-mail address (ten@co-quan.gov.vn)"
        )

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.ca_file)
        if not self.config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        if cfg.implicit_tls:
            return smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s, context=self._tls_context())
        client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        client.ehlo()
        if cfg.starttls:
            if not client.has_extn("starttls"):
                client.quit()
                raise RetryableDeliveryError(
                    f"SMTP server {cfg.host}:{cfg.port} does not offer STARTTLS; "
                    "enable it on the server or set starttls = false for a trusted local relay"
                )
            client.starttls(context=self._tls_context())
            client.ehlo()
        return client

    def send(
        self,
        message: OutboxMessage,
        rendered: RenderedAlert,
        before_transmit: Callable[[], None] = lambda: None,
    ) -> None:
        self.send_mail(build_email(self.config, message, rendered), [message.recipient], before_transmit)

    def send_mail(
        self, mail: EmailMessage, recipients: list[str], before_transmit: Callable[[], None] = lambda: None
    ) -> dict[str, str]:
        """Send any message (an alert, the daily digest); returns recipients refused while others got
        it. Raises `PermanentDeliveryError` if every recipient was refused, `RetryableDeliveryError`
        if the server is unreachable or busy."""
        cfg = self.config
        try:
            client = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise RetryableDeliveryError(f"cannot reach SMTP server {cfg.host}:{cfg.port}: {exc}") from exc
        try:
            if cfg.username:
                client.login(cfg.username, cfg.password or "")
            before_transmit()
            refused = client.send_message(mail, from_addr=cfg.sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            code, detail = next(iter(exc.recipients.values()))
            raise _smtp_failure(code, f"recipient(s) {', '.join(recipients)} refused: {detail!r}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            # A wrong password concerns every message: keep them queued until the settings are fixed.
            raise RetryableDeliveryError(
                f"SMTP login as {cfg.username!r} refused: {exc.smtp_error!r}"
            ) from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise _smtp_failure(exc.smtp_code, repr(exc.smtp_error)) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise RetryableDeliveryError(f"SMTP session with {cfg.host}:{cfg.port} failed: {exc}") from exc
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
        return {address: f"SMTP {code}: {detail!r}" for address, (code, detail) in refused.items()}

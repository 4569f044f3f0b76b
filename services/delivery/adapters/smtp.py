"""Sending email: the SMTP mailer (aiosmtplib), with SMTP failures mapped onto podbrief.errors (4xx and
connection trouble: retryable; 5xx: permanent)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
from podbrief.errors import PermanentError, RetryableError
from podbrief_delivery.settings import SmtpSettings


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> str: ...


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> str:
        s = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password.get_secret_value() if s.password else None,
                use_tls=s.use_tls,
                start_tls=True if s.starttls else False,
                timeout=s.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            if codes and all(400 <= c < 500 for c in codes):
                raise RetryableError("recipient refused temporarily: " + detail, reason="smtp_4xx") from exc
            raise PermanentError("recipient refused: " + detail, reason="smtp_5xx") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise RetryableError(f"smtp {exc.code} {exc.message}", reason="smtp_4xx") from exc
            if exc.code >= 500:
                raise PermanentError(f"smtp {exc.code} {exc.message}", reason="smtp_5xx") from exc
            raise RetryableError(f"smtp {exc.code} {exc.message}", reason="smtp_other") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise RetryableError(f"smtp unavailable: {exc}", reason="smtp_connect") from exc
        return str(message.get("Message-ID", ""))

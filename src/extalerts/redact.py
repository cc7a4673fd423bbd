"""Keep secrets out of logs, including the provider SDKs' own debug logging.

The SDKs log request options and bodies at debug level (the Cloudflare SDK logs a Logpush job's
``destination_conf``, which holds an API key). Every secret extalerts reads is registered here, and
every log record created from then on has it replaced, whichever logger and level a user turns on.
(A filter on the SDK loggers would not do: filters do not see records of child loggers.)
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

MASK = "***"

_secrets: list[str] = []
_lock = threading.Lock()
_installed = False


def _redacting_factory(previous: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = previous(*args, **kwargs)
        secrets = _secrets
        if secrets:
            message = record.getMessage()
            redacted = message
            for secret in secrets:
                redacted = redacted.replace(secret, MASK)
            if redacted != message:
                record.msg, record.args = redacted, None
        return record

    return factory


def redact(*secrets: str | None) -> None:
    """Register secrets; from now on they are masked in every log record."""
    global _secrets, _installed
    with _lock:
        known = set(_secrets) | {s for s in secrets if s and len(s) >= 4}
        _secrets = sorted(known, key=len, reverse=True)  # longest first, so no secret is half-masked
        if not _installed:
            logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
            _installed = True


def secret_digest(value: str) -> str:
    """What plans show for a secret: a short hash of it, so a changed secret shows as changed and no
    plan, diff or log ever holds the value."""
    return "(secret sha256:" + hashlib.sha256(value.encode()).hexdigest()[:8] + ")"

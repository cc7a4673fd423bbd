"""The sandbox's notification sink: a loopback webhook receiver that keeps what it was sent.

``POST <any path>`` stores the body (JSON when it parses) with the path and the provider time it
arrived; ``GET /messages`` answers the list. Slack, PagerDuty and e-mail notifications land here
too, under ``/datadog/<kind>`` or ``/splunk/<action>``, so the demo can show who would have been told.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from extalerts.emulators.base import LoopbackServer

#: Delivers a notification to a webhook URL, or to the sink under a path when the URL is not loopback.
Deliver = Callable[[str, dict[str, Any], str], None]


class WebhookSink(LoopbackServer):
    thread_name = "webhook-sink"
    methods = ("GET", "POST")

    def __init__(self, clock: Callable[[], float], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.clock = clock
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__(host, port)

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        payload: Any
        if request.command == "GET":
            status, payload = (200, self.received()) if request.path.split("?")[0] == "/messages" else (404, {})
        else:
            length = int(request.headers.get("Content-Length") or 0)
            raw = request.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            with self._lock:
                self.messages.append({"path": request.path, "received_at": self.clock(), "body": body})
            status, payload = 200, {"ok": True}
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


def post_json(url: str, payload: Any, timeout: float = 5.0) -> int:
    """POST ``payload`` as JSON; the status, or 0 when nothing answered."""
    request = urllib.request.Request(  # noqa: S310 - the sandbox's own sink or a configured webhook URL
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback or configured URL
            return int(response.status)
    except OSError:
        return 0


def read_messages(sink_url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    with urllib.request.urlopen(sink_url.rstrip("/") + "/messages", timeout=timeout) as response:  # noqa: S310
        data = json.loads(response.read())
    return data if isinstance(data, list) else []

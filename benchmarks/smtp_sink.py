"""An SMTP sink for ``bench_campaign.py``: aiosmtpd on ``127.0.0.1:<port>`` that accepts every
message and only counts them (messages, bytes), in a process of its own.

``smtp_sink.py PORT [LATENCY_MS]``: with a latency, each answer to ``MAIL``, ``RCPT`` and
``DATA`` waits that long first (a relay across a network, roughly). Prints ``ready`` once it
listens; then each line read on stdin (``count``) is answered with ``<messages> <bytes>``; end
of input stops it.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content or envelope.content or b"")
        return "250 OK"


class SlowCounter(Counter):
    """A ``Counter`` whose every answer to MAIL, RCPT and DATA comes ``latency_s`` late."""

    def __init__(self, latency_s: float) -> None:
        super().__init__()
        self.latency_s = latency_s

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(self.latency_s)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(self.latency_s)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.latency_s)
        return await super().handle_DATA(server, session, envelope)


def main() -> None:
    port = int(sys.argv[1])
    latency_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    counter = SlowCounter(latency_ms / 1000) if latency_ms > 0 else Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port, data_size_limit=0)
    controller.start()
    try:
        print("ready", flush=True)
        for _line in sys.stdin:
            print(f"{counter.messages} {counter.bytes}", flush=True)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

"""Background loops of a server process: each runs forever, survives its own errors, and stops
with the process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(name: str, period_s: float, step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` every `period_s` seconds; an error is logged and the loop goes on."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop %s failed; retrying", name)
        await asyncio.sleep(period_s)


class Loops:
    """The set of background tasks started by the lifespan."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, coro: Awaitable[None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))
        self.tasks[-1].set_name(name)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()

"""Background loops of a server process: each runs forever, survives its own errors, and stops
with the process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

STOP_WAIT_S = 5.0


def stop_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed.

    Some client libraries catch `CancelledError` in their cleanup paths and return normally;
    a loop that carried on would then never stop. Loops call this once per pass.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def every(name: str, period_s: float, step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` every `period_s` seconds; an error is logged and the loop goes on."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop %s failed; retrying", name)
        stop_if_cancelled()
        await asyncio.sleep(period_s)


class Loops:
    """The set of background tasks started by the lifespan."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, coro: Awaitable[None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))
        self.tasks[-1].set_name(name)

    async def stop(self) -> None:
        """Cancel every loop and wait for them, at most STOP_WAIT_S: shutdown never hangs."""
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=STOP_WAIT_S)
            for task in pending:
                log.error(
                    "background loop %s did not stop within %s s", task.get_name(), STOP_WAIT_S
                )
        self.tasks.clear()

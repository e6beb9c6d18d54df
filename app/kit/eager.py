"""Start a coroutine in the caller's own step, the way Python 3.12's eager tasks do.

Most sends on a live socket complete without ever suspending: the transport takes the bytes
and returns. Running such a send as a task costs a task, a trip through the event loop and,
with a timeout around it, a timer, for nothing. `start` runs the coroutine right away; only if
it suspends does the caller get an awaitable that continues it exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any


class Continuation:
    """The rest of a coroutine that suspended on `yielded`: awaiting this resumes it.

    The awaiting task receives what the coroutine yielded (the future it waits on) and hands
    back what the coroutine should see: a value, or an exception such as a cancellation."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def start(coro: Coroutine[Any, Any, None]) -> Continuation | None:
    """Run `coro` until it finishes or first suspends. None: it finished; otherwise await the
    returned continuation (in a task) to finish it. Its exceptions propagate to the caller."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return Continuation(coro, yielded)

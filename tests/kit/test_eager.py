"""app.kit.eager: a coroutine started in the caller's step, continued only if it suspends."""

from __future__ import annotations

import asyncio

import pytest

from app.kit import eager


async def test_a_coroutine_that_never_suspends_finishes_in_the_callers_step() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("sent")

    assert eager.start(quick()) is None
    assert done == ["sent"]


async def test_a_suspended_coroutine_continues_where_it_stopped() -> None:
    gate = asyncio.Event()
    steps: list[str] = []

    async def slow() -> None:
        steps.append("before")
        await gate.wait()
        steps.append("after")
        await asyncio.sleep(0)  # a bare yield to the loop, passed through as well
        steps.append("end")

    rest = eager.start(slow())
    assert rest is not None
    assert steps == ["before"]
    task = asyncio.get_running_loop().create_task(_await(rest))
    await asyncio.sleep(0.01)
    assert steps == ["before"]
    gate.set()
    await task
    assert steps == ["before", "after", "end"]


async def test_the_continuation_returns_the_coroutines_value() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def value() -> None:
        got = await fut
        raise LookupError(got)

    rest = eager.start(value())
    assert rest is not None
    asyncio.get_running_loop().call_soon(fut.set_result, 7)
    with pytest.raises(LookupError, match="7"):
        await rest


async def test_exceptions_raised_before_suspending_reach_the_caller() -> None:
    async def broken() -> None:
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        eager.start(broken())


async def test_a_timeout_cancels_the_suspended_coroutine_inside() -> None:
    gate = asyncio.Event()
    cleaned: list[bool] = []

    async def stuck() -> None:
        try:
            await gate.wait()
        finally:
            cleaned.append(True)

    rest = eager.start(stuck())
    assert rest is not None
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await rest
    assert cleaned == [True]
    assert not gate._waiters  # the inner wait was cancelled, not left behind


async def _await(rest: eager.Continuation) -> None:
    await rest

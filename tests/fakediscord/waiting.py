"""Wake-ups for tests that wait on the fake's state (every request and gateway event notifies)."""

from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

from .errors import WaitTimeout

T = TypeVar("T")


class Notifier:
    """Lets coroutines wait until a condition on the fake's state holds."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
        self._waiters.clear()

    async def wait_for(self, probe: Callable[[], T], timeout: float, describe: Callable[[], str],
                       poll_interval: float = 0.02) -> T:
        """Returns probe()'s first truthy value; raises WaitTimeout (with describe()) after `timeout` s.

        Re-checked on every notify, and every `poll_interval` s for conditions on state outside the fake.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = probe()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(f"timed out after {timeout:g}s waiting for {describe()}")
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.add(future)
            try:
                await asyncio.wait_for(future, min(remaining, poll_interval))
            except asyncio.TimeoutError:
                pass
            finally:
                self._waiters.discard(future)

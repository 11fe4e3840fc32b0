"""A bounded waiting line served round-robin across users, so one user's burst cannot starve another."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Per-user FIFO lines served one item per user in turn.

    Users are visited in the order they first queued; after a user is served they go to the
    back of the round. ``urgent`` items (requests being retried) are served before all others.
    ``order()`` predicts the exact serving order if nothing else arrives, which gives queue
    positions.
    """

    def __init__(self, key: Callable[[T], Hashable]) -> None:
        self._key = key
        self._lines: OrderedDict[Hashable, deque[T]] = OrderedDict()
        self._urgent: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._urgent) + sum(len(line) for line in self._lines.values())

    def __iter__(self) -> Iterator[T]:
        return iter(self.order())

    def push(self, item: T) -> None:
        self._lines.setdefault(self._key(item), deque()).append(item)

    def push_urgent(self, item: T) -> None:
        self._urgent.append(item)

    def peek(self) -> T | None:
        if self._urgent:
            return self._urgent[0]
        for line in self._lines.values():
            return line[0]
        return None

    def pop(self) -> T:
        if self._urgent:
            return self._urgent.popleft()
        key, line = next(iter(self._lines.items()))
        item = line.popleft()
        del self._lines[key]
        if line:
            self._lines[key] = line  # back of the round
        return item

    def remove(self, item: T) -> bool:
        """Take ``item`` out wherever it waits; False if it was not there."""
        if item in self._urgent:
            self._urgent.remove(item)
            return True
        key = self._key(item)
        line = self._lines.get(key)
        if line is None or item not in line:
            return False
        line.remove(item)
        if not line:
            del self._lines[key]
        return True

    def drain(self) -> list[T]:
        """Remove and return everything, in serving order."""
        items = self.order()
        self._urgent.clear()
        self._lines.clear()
        return items

    def order(self) -> list[T]:
        """Everything waiting, in the order ``pop`` would return it."""
        out = list(self._urgent)
        lines = [list(line) for line in self._lines.values()]
        depth = max((len(line) for line in lines), default=0)
        for i in range(depth):
            out.extend(line[i] for line in lines if i < len(line))
        return out

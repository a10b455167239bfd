"""One statement for the requests of one event-loop iteration.

Under load, many requests reach the same store call within one iteration of the
event loop: the token endpoint's insert of a new access token, introspection's
lookup of a token by its hash. Each on its own takes a connection from the pool,
makes a round trip and, for a write, waits for its commit's WAL flush. Gathered,
they share one connection, one round trip and one commit, and the server's core
spends its time on requests rather than on the pool. A call waits for at most one
turn of the loop before its batch goes out, so a lone request is not delayed.

A batch that fails as a whole is not blamed on every call in it: a statement
error (a constraint, say) is retried call by call, so only the call at fault sees
it; a lost connection fails them all, as it would have failed each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

_In = TypeVar("_In")
_Out = TypeVar("_Out")

#: The most calls one statement carries; more wait for the next.
MAX_BATCH = 256


class Batcher(Generic[_In, _Out]):
    """Runs ``run`` once for the calls of ``submit`` made in one loop iteration.

    ``run`` takes the calls' inputs and returns one result per input, in order.
    When it fails for a batch of several and ``isolate(error)`` is true, each call
    is run again by itself; any other failure reaches every call of the batch.
    """

    def __init__(
        self,
        run: Callable[[Sequence[_In]], Awaitable[Sequence[_Out]]],
        *,
        isolate: Callable[[Exception], bool] = lambda error: False,
    ) -> None:
        self._run = run
        self._isolate = isolate
        self._pending: list[tuple[_In, asyncio.Future[_Out]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: _In) -> _Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Out] = loop.create_future()
        if not self._pending:
            # Callbacks scheduled now run after every task already ready in this
            # iteration: each of them can still join the batch.
            loop.call_soon(self._flush)
        self._pending.append((item, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            task = asyncio.ensure_future(self._send(pending[start : start + MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[_In, asyncio.Future[_Out]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            if len(batch) > 1 and self._isolate(exc):
                await asyncio.gather(*(self._send([call]) for call in batch))
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

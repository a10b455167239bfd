"""A store that reports each call: its time and failure to the metrics, a span to the
tracer. Only made when there are instruments, so an uninstrumented server pays nothing."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from .instruments import Instruments

if TYPE_CHECKING:
    from ..storage.base import Storage


class InstrumentedStorage:
    """Every coroutine method of ``storage``, measured; everything else passed through."""

    def __init__(self, storage: object, instruments: Instruments) -> None:
        self._storage = storage
        self._instruments = instruments

    @property
    def unwrapped(self) -> object:
        return self._storage

    def __getattr__(self, name: str) -> Any:
        # Only what this object lacks comes here; it keeps what it found (a store's
        # methods and its revocation signal are fixed), so this runs once per name.
        attribute = getattr(self._storage, name)
        if inspect.iscoroutinefunction(attribute):
            attribute = _measured(name, attribute, self._instruments)
        setattr(self, name, attribute)
        return attribute


def _measured(
    name: str, call: Callable[..., Awaitable[Any]], instruments: Instruments
) -> Callable[..., Awaitable[Any]]:
    metrics, tracer = instruments.metrics, instruments.tracer
    span_name, attributes = f"store {name}", {"db.operation.name": name}

    @functools.wraps(call)
    async def measured(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        failed = True
        try:
            if tracer is None:
                result = await call(*args, **kwargs)
            else:
                with tracer.start_as_current_span(span_name, attributes=attributes):
                    result = await call(*args, **kwargs)
            failed = False
            return result
        finally:
            if metrics is not None:
                metrics.store_call(name, time.perf_counter() - started, failed=failed)

    return measured


def instrumented(storage: Storage, instruments: Instruments) -> Storage:
    """``storage`` measured when there are instruments, else itself; the metrics also
    watch its revocation notifications where it has a connection for them."""
    if not instruments.active:
        return storage
    signal = getattr(storage, "revocation_signal", None)
    if instruments.metrics is not None and signal is not None and hasattr(signal, "live"):
        instruments.metrics.watch("store", lambda: bool(signal.live))
    return cast("Storage", InstrumentedStorage(storage, instruments))

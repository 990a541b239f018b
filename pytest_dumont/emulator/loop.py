"""One asyncio event loop in a daemon thread, so that blocking callers (HTTP handler threads) can drive SSH servers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class PendingCall:
    """A call scheduled on the loop from any thread; ``cancel()`` is thread-safe, like ``asyncio.TimerHandle``'s."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._handle: asyncio.TimerHandle | None = None
        self._cancelled = False

    def _arm(self, delay: float, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        with self._lock:
            if not self._cancelled:
                self._handle = self._loop.call_later(delay, fn, *args)

    def cancel(self) -> None:
        """Make sure the call does not happen (a no-op if it already ran)."""
        with self._lock:
            self._cancelled = True
            handle = self._handle
        if handle is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(handle.cancel)

    def cancelled(self) -> bool:
        """Whether ``cancel()`` was called."""
        return self._cancelled


class LoopThread:
    """An asyncio event loop running in a daemon thread, shared by all emulated SSH servers."""

    def __init__(self, name: str = "dumont-emulator-loop") -> None:
        self.loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Start the loop's thread; returns once the loop runs. Idempotent."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("this LoopThread was stopped; make a new one")
            if self._thread is not None:
                return
            running = threading.Event()
            self._thread = threading.Thread(target=self._main, args=(running,), name=self._name, daemon=True)
            self._thread.start()
        running.wait()

    def _main(self, running: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(running.set)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        """Run ``coro`` on the loop and wait for its result; cancels it if ``timeout`` passes first."""
        if self._thread is threading.current_thread():
            coro.close()
            raise RuntimeError("LoopThread.run() called from the loop's own thread would deadlock")
        self.start()
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Schedule ``fn(*args)`` on the loop from any thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def call_later(self, delay: float, fn: Callable[..., object], *args: object) -> PendingCall:
        """Schedule ``fn(*args)`` after ``delay`` seconds from any thread; the handle's ``cancel()`` is thread-safe."""
        pending = PendingCall(self.loop)
        if self._thread is threading.current_thread():
            pending._arm(delay, fn, args)
        else:
            self.loop.call_soon_threadsafe(pending._arm, delay, fn, args)
        return pending

    def stop(self) -> None:
        """Cancel every task, stop and join the thread, close the loop. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            thread = self._thread
        if thread is not None:
            if thread is threading.current_thread():
                raise RuntimeError("LoopThread.stop() cannot be called from the loop's own thread")
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            thread.join(30)
        self.loop.close()

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()

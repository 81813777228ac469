"""Subflows of the current flow run, several at once: what a backfill runs its days with.

A sync flow calls a subflow and blocks until it ends, so the calls go to a bounded thread pool,
each in a copy of the caller's context (`contextvars.copy_context`): the subflow engine finds the
caller's `FlowRunContext` there and creates a child flow run of its own under it, exactly as a
direct call does. Prefect creates the tracking task run of each subflow on its one run-sync event
loop, so the parent's task keys are handed out one at a time even when the calls start together.
The Dask work of the subflows shares the caller's cluster (the subflow's own task runner says
where); the threads only wait on it and on the Prefect API.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextvars import copy_context
from dataclasses import dataclass
from threading import Event
from typing import Any, TypeVar, cast
from uuid import uuid4

from prefect import Flow
from prefect.client.schemas.objects import State
from prefect.states import Failed

Key = TypeVar("Key", bound=Hashable)


#: Calls waiting for their subflow run to be running, by a key the hook below carries.
_STARTING: dict[str, Event] = {}


@dataclass(frozen=True)
class _Announce:
    """The subflow's on_running hook: its run is created and running. A plain picklable value (the
    flow, hooks included, travels with its tasks to the Dask workers), never called there."""

    key: str

    def __call__(self, *_: Any) -> None:
        started = _STARTING.get(self.key)
        if started is not None:
            started.set()


def _final_state(
    subflow: Flow[..., Any], arguments: Mapping[str, Any], after: Event | None, started: Event
) -> State[Any]:
    """The subflow run's final state (an error before it could run is a failed state too), once the
    previous call's run is running."""
    if after is not None:
        after.wait()
    key = uuid4().hex
    _STARTING[key] = started
    try:
        hooks: list[Any] = [*subflow.on_running_hooks, _Announce(key)]
        state = cast("State[Any]", subflow.with_options(on_running=hooks)(**arguments, return_state=True))
    except Exception as error:
        state = Failed(message=f"{type(error).__name__}: {error}")
    finally:
        _STARTING.pop(key, None)
        started.set()
    return state


def as_finished(
    subflow: Flow[..., Any], calls: Mapping[Key, Mapping[str, Any]], width: int
) -> Iterator[tuple[Key, State[Any]]]:
    """Run `subflow(**arguments)` for every call, at most `width` at once, as children of the current
    flow run; yield (key, final state) as each run finishes (not in the order of `calls`).

    Runs are created one at a time (each call starts once the previous run is running): on a
    SQLite-backed Prefect server two subflow runs created at the same instant collide on the
    database lock and one is retried seconds later. Closing the iterator early drops the calls not
    started yet and waits for the running ones.
    """
    events = [Event() for _ in calls]
    with ThreadPoolExecutor(max_workers=max(1, width), thread_name_prefix=f"{subflow.name}-") as pool:
        futures: dict[Future[State[Any]], Key] = {
            pool.submit(
                copy_context().run, _final_state, subflow, arguments, events[number - 1] if number else None, started
            ): key
            for (number, (key, arguments)), started in zip(enumerate(calls.items()), events, strict=True)
        }
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()

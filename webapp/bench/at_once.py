"""Work released on many threads at the same moment, timed from the release to the last
one done: how benches model people pressing a button together. Standard library only: the
API bench's client process imports it and must start fast, and the bench systems import it
by its own name when they measure another checkout (see systems.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


def at_once(run: Callable[[Any], Any], items: Sequence[Any]) -> tuple[float, list[Any]]:
    """`run(item)` for every item, each on a thread of its own, all released together; the
    makespan in seconds and the results in the items' order. The first failure is raised
    (after every thread has ended), naming how many failed."""
    start = threading.Barrier(len(items) + 1)
    results: list[Any] = [None] * len(items)

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = run(items[index])
        except BaseException as error:  # reported once every thread has ended
            results[index] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    makespan = time.perf_counter() - began
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(items)} failed: {failed[0]}") from failed[0]
    return makespan, results

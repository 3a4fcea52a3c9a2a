"""The model manager: load once, stay inside a memory budget, evict the least recently used.

One manager per process and device, owned by the engine: only the engine's worker thread
loads, runs and unloads models. `get(name)` returns the resident model, loading it on first
use (concurrent first requests load it exactly once). Code that runs a model holds it with
`use(name)`, so it cannot be evicted mid-use.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from webapp.backends.memory import module_bytes
from webapp.device import dtype_for, free_cached_memory
from webapp.errors import AtelierError, ModelLoadError, without_paths
from webapp.model_entry import ModelEntry, check_model_name
from webapp.registry import Registry
from webapp.settings import Settings, env_name

log = logging.getLogger(__name__)

LoadFunction = Callable[[ModelEntry, torch.device, torch.dtype], Any]
GIB = 1024**3


@dataclass
class _Resident:
    entry: ModelEntry
    handle: Any
    dtype: torch.dtype
    nbytes: int
    load_seconds: float
    last_used: float
    loaded_on: str  # the thread that loaded it: the engine's worker
    uses: int = 0
    pinned: bool = False
    in_use: int = 0


@dataclass(frozen=True)
class ModelStats:
    name: str
    kind: str
    device: str
    dtype: str
    bytes: int
    load_seconds: float
    last_used: float
    uses: int
    pinned: bool
    in_use: bool
    loaded_on: str


class ModelManager:
    def __init__(
        self,
        registry: Callable[[], Registry],
        device: torch.device,
        budget_bytes: int,
        settings: Settings,
        load_function: LoadFunction | None = None,
    ):
        self.registry = registry
        self.device = device
        self.budget_bytes = budget_bytes
        self._settings = settings
        self._load_function = load_function or self._load_from_files
        self._resident: dict[str, _Resident] = {}
        self._loading: dict[str, Future] = {}
        self._lock = threading.Lock()

    # -- getting models -------------------------------------------------------------------

    def get(self, name: str) -> Any:
        """The resident model, loaded on first use."""
        return self._acquire(name, hold=False)

    @contextmanager
    def use(self, name: str) -> Iterator[Any]:
        """Hold a model while running it: it will not be evicted until the block ends."""
        handle = self._acquire(name, hold=True)
        try:
            yield handle
        finally:
            with self._lock:
                resident = self._resident.get(name)
                if resident is not None:
                    resident.in_use -= 1

    def _acquire(self, name: str, hold: bool) -> Any:
        check_model_name(name)
        while True:
            with self._lock:
                resident = self._resident.get(name)
                if resident is not None:
                    resident.last_used = time.time()
                    resident.uses += 1
                    resident.in_use += int(hold)
                    return resident.handle
                pending = self._loading.get(name)
                loader_thread = pending is None
                if loader_thread:
                    pending = self._loading[name] = Future()
            if loader_thread:
                self._load(name, pending)
            # Waiters and the loader alike re-read the resident set (raising the load error).
            pending.result()

    def _load(self, name: str, pending: Future) -> None:
        try:
            entry = self.registry().get(name)
            self._make_room(entry.size_bytes, keep=name)
            dtype = dtype_for(entry.kind, entry.family, self.device, self._settings)
            started = time.perf_counter()
            handle = self._load_function(entry, self.device, dtype)
            seconds = time.perf_counter() - started
            resident = _Resident(
                entry,
                handle,
                dtype,
                module_bytes(handle),
                seconds,
                time.time(),
                loaded_on=threading.current_thread().name,
            )
            with self._lock:
                self._resident[name] = resident
            self._fit_after_load(resident)
            log.info("loaded %s in %.2fs (%d MB)", name, seconds, resident.nbytes // 2**20)
            pending.set_result(None)
        except AtelierError as error:
            pending.set_exception(error)
        except Exception as error:
            log.exception("loading %s failed", name)
            pending.set_exception(_load_error(name, error))
        finally:
            with self._lock:
                self._loading.pop(name, None)

    def _load_from_files(self, entry: ModelEntry, device: torch.device, dtype: torch.dtype) -> Any:
        from webapp.backends import diffusion, llm

        if entry.format == "remote":
            raise ModelLoadError(
                f"{entry.name!r} is served by its text server ({entry.source}); there is "
                "nothing to load here.",
                field="model",
            )
        allow_pickle = self._settings.allow_pickle
        if entry.kind == "image":
            return diffusion.load_pipeline(
                entry,
                device,
                dtype,
                allow_pickle,
                self.registry().config_folder_for(entry),
                channels_last=self._settings.channels_last,
                compile_unet=self._settings.compile_unet,
            )
        if entry.kind == "safety":
            return diffusion.load_safety_checker(entry, device, dtype)
        if entry.kind == "embedding":
            return llm.load_embedding_model(entry, device, dtype, allow_pickle)
        return llm.load_text_model(entry, device, dtype, allow_pickle)

    # -- memory budget ---------------------------------------------------------------------

    def _evictable(self, keep: str) -> list[_Resident]:
        candidates = [
            r for n, r in self._resident.items() if n != keep and not r.pinned and not r.in_use
        ]
        return sorted(candidates, key=lambda r: r.last_used)

    def _make_room(self, needed: int, keep: str) -> None:
        """Evict least recently used models until `needed` more bytes fit the budget."""
        evicted = []
        with self._lock:
            used = sum(r.nbytes for r in self._resident.values())
            for resident in self._evictable(keep):
                if used + needed <= self.budget_bytes:
                    break
                del self._resident[resident.entry.name]
                evicted.append(resident.entry.name)
                used -= resident.nbytes
            resident = None  # drop the loop's reference so the memory can really be freed
        if evicted:
            log.info("evicted %s to stay inside the memory budget", ", ".join(evicted))
            self.release_memory()

    def _fit_after_load(self, loaded: _Resident) -> None:
        name = loaded.entry.name
        self._make_room(0, keep=name)
        with self._lock:
            used = sum(r.nbytes for r in self._resident.values())
            if used <= self.budget_bytes:
                return
            self._resident.pop(name)
            held = used - loaded.nbytes
        del loaded
        self.release_memory()
        raise ModelLoadError(
            f"Model {name!r} does not fit the memory budget: it needs {_gib(used - held)}, the "
            f"budget is {_gib(self.budget_bytes)} and pinned or busy models hold {_gib(held)}. "
            f"Unpin or unload a model, or raise {env_name('memory_budget_gb')}.",
            field="model",
        )

    def release_memory(self) -> None:
        """Give back what dropped models and failed calls held (and cached GPU memory)."""
        gc.collect()
        free_cached_memory(self.device)

    # -- admin operations ------------------------------------------------------------------

    def pin(self, name: str) -> None:
        self.get(name)
        with self._lock:
            self._resident[name].pinned = True

    def unpin(self, name: str) -> None:
        with self._lock:
            if name in self._resident:
                self._resident[name].pinned = False

    def unload(self, name: str) -> bool:
        """Drop a model and free its memory; False if it was not loaded or is in use."""
        with self._lock:
            resident = self._resident.get(name)
            if resident is None or resident.in_use:
                return False
            del self._resident[name]
        del resident
        self.release_memory()
        return True

    def unload_all(self) -> None:
        for name in list(self._resident):
            self.unload(name)

    def resident_bytes(self) -> int:
        with self._lock:
            return sum(r.nbytes for r in self._resident.values())

    def stats_of(self, name: str) -> ModelStats | None:
        return next((s for s in self.stats() if s.name == name), None)

    def stats(self) -> list[ModelStats]:
        with self._lock:
            return [
                ModelStats(
                    name=name,
                    kind=r.entry.kind,
                    device=str(self.device),
                    dtype=str(r.dtype).removeprefix("torch."),
                    bytes=r.nbytes,
                    load_seconds=r.load_seconds,
                    last_used=r.last_used,
                    uses=r.uses,
                    pinned=r.pinned,
                    in_use=bool(r.in_use),
                    loaded_on=r.loaded_on,
                )
                for name, r in sorted(self._resident.items())
            ]


def _gib(count: int) -> str:
    return f"{count / GIB:.2f} GB"


def _load_error(name: str, error: Exception) -> ModelLoadError:
    """A plain-language load error naming the model and the cause."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        cause = "the GPU ran out of memory while loading it; unload other models first"
    else:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        cause = f"{type(error).__name__}: {without_paths(first_line)[:300]}"
    return ModelLoadError(
        f"Model {name!r} could not be loaded ({cause}). Its files may be missing or "
        "incomplete: copy the model into the models dir again.",
        field="model",
    )

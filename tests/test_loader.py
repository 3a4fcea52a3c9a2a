import gc
import threading
import time
import weakref

import pytest
import torch

from webapp.backends.llm import TextModel
from webapp.device import cpu_has_bf16_matrix_units
from webapp.errors import ModelLoadError, ValidationError
from webapp.loader import ModelManager
from webapp.registry import LiveRegistry
from webapp.settings import Settings

MB = 2**20


def fake_loader(megabytes: int, calls: list, delay: float = 0.0):
    """A load function that makes a module of a known size and records each call."""

    def load(entry, device, dtype):
        calls.append(entry.name)
        time.sleep(delay)
        return torch.nn.Linear(megabytes * MB // 4, 1, bias=False)

    return load


def manager_for(models_dir, budget_bytes, load_function=None):
    settings = Settings(models_dir=models_dir, device="cpu")
    return ModelManager(
        LiveRegistry(settings), torch.device("cpu"), budget_bytes, settings, load_function
    )


def add_text_model_copy(models_dir, name):
    import shutil

    shutil.copytree(models_dir / "tiny-llm", models_dir / name)


def test_get_loads_once_and_returns_the_resident_model(tiny_models_dir):
    calls = []
    manager = manager_for(tiny_models_dir, 100 * MB, fake_loader(1, calls))
    first = manager.get("tiny-llm")
    assert manager.get("tiny-llm") is first
    assert calls == ["tiny-llm"]
    (stats,) = manager.stats()
    text_dtype = "bfloat16" if cpu_has_bf16_matrix_units() else "float32"
    assert (stats.name, stats.uses, stats.device, stats.dtype) == ("tiny-llm", 2, "cpu", text_dtype)
    assert stats.bytes == 1 * MB


def test_eight_concurrent_first_requests_load_exactly_once(tiny_models_dir):
    calls = []
    manager = manager_for(tiny_models_dir, 100 * MB, fake_loader(1, calls, delay=0.3))
    barrier = threading.Barrier(8)
    results = []

    def request():
        barrier.wait()
        results.append(manager.get("tiny-sd"))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["tiny-sd"]
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_least_recently_used_model_is_evicted_to_fit_the_budget(models_dir):
    add_text_model_copy(models_dir, "third-llm")
    calls = []
    manager = manager_for(models_dir, int(2.5 * MB), fake_loader(1, calls))
    manager.get("tiny-llm")
    manager.get("tiny-sd")
    manager.get("tiny-llm")  # tiny-sd is now the least recently used
    manager.get("third-llm")
    assert {s.name for s in manager.stats()} == {"tiny-llm", "third-llm"}
    assert manager.resident_bytes() <= 2.5 * MB


def test_pinned_and_busy_models_are_not_evicted(models_dir):
    add_text_model_copy(models_dir, "third-llm")
    manager = manager_for(models_dir, int(2.5 * MB), fake_loader(1, []))
    manager.pin("tiny-sd")
    with manager.use("tiny-llm"):
        with pytest.raises(ModelLoadError, match="memory budget"):
            manager.get("third-llm")
        assert {s.name for s in manager.stats()} == {"tiny-sd", "tiny-llm"}
    manager.get("third-llm")  # tiny-llm is free again, so it is evicted
    assert {s.name for s in manager.stats()} == {"tiny-sd", "third-llm"}


def test_model_larger_than_the_budget_says_so(tiny_models_dir):
    manager = manager_for(tiny_models_dir, 1 * MB, fake_loader(2, []))
    with pytest.raises(ModelLoadError) as caught:
        manager.get("tiny-llm")
    assert "ATELIER_MEMORY_BUDGET_GB" in caught.value.message
    assert manager.stats() == []


def test_unload_really_frees_the_model(tiny_models_dir):
    manager = manager_for(tiny_models_dir, 10**9)
    model = manager.get("tiny-llm")
    assert isinstance(model, TextModel)
    alive = weakref.ref(model.model)
    del model
    assert manager.unload("tiny-llm") is True
    gc.collect()
    assert alive() is None
    assert manager.resident_bytes() == 0
    assert manager.unload("tiny-llm") is False


def test_real_tiny_models_load_in_float32_on_cpu(tiny_models_dir):
    manager = manager_for(tiny_models_dir, 10**9)
    pipe = manager.get("tiny-sd")
    assert pipe.unet.dtype == torch.float32
    stats = {s.name: s for s in manager.stats()}
    assert stats["tiny-sd"].bytes > 100_000
    assert stats["tiny-sd"].load_seconds > 0


def test_truncated_weights_name_the_model_and_cause_and_manager_stays_healthy(models_dir):
    weights = models_dir / "tiny-llm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    manager = manager_for(models_dir, 10**9)
    with pytest.raises(ModelLoadError) as caught:
        manager.get("tiny-llm")
    assert "'tiny-llm'" in caught.value.message
    assert "copy the model" in caught.value.message
    assert manager.get("tiny-sd") is not None  # the manager keeps serving
    with pytest.raises(ModelLoadError):  # and a second attempt fails the same way
        manager.get("tiny-llm")


def test_bad_config_values_give_a_load_error(models_dir):
    config = models_dir / "tiny-llm" / "config.json"
    config.write_text(config.read_text().replace('"hidden_size": 64', '"hidden_size": 63'))
    with pytest.raises(ModelLoadError, match="tiny-llm"):
        manager_for(models_dir, 10**9).get("tiny-llm")


def test_path_like_names_never_reach_the_disk(tiny_models_dir):
    calls = []
    manager = manager_for(tiny_models_dir, 10**9, fake_loader(1, calls))
    with pytest.raises(ValidationError):
        manager.get("../tiny-llm")
    assert calls == []

"""Building an engine: the model manager, the token counter and the lanes, in one place.

Whoever builds an engine owns it: the app's cached resource, a CLI command, a benchmark or
a test. There is no process-wide engine.
"""

from __future__ import annotations

from webapp.engine.core import Engine
from webapp.offline import use_offline_environment
from webapp.settings import Settings


def build_engine(
    settings: Settings,
    image_runner=None,
    preview=None,
    decode_batch=None,
    batch_window_seconds: float | None = None,
    embed=None,
) -> Engine:
    """A started engine for the device the settings name. `image_runner`, `preview`,
    `decode_batch` (text and documents) and `embed` replace the model adapters (tests use
    fakes)."""
    use_offline_environment()
    from webapp.backends import quiet_libraries
    from webapp.device import memory_budget_bytes, resolve_device
    from webapp.engine.document_lane import DocumentLane
    from webapp.engine.embedding_lane import EmbeddingLane
    from webapp.engine.image_lane import ImageLane
    from webapp.engine.text_lane import TextLane
    from webapp.engine.tokens import TokenCounter
    from webapp.engine.training_lane import TrainingLane
    from webapp.loader import ModelManager
    from webapp.registry import LiveRegistry

    quiet_libraries()
    device = resolve_device(settings)
    registry = LiveRegistry(settings)
    manager = ModelManager(registry, device, memory_budget_bytes(settings, device), settings)
    engine = Engine(manager, settings, TokenCounter(registry))
    window = batch_window_seconds
    if window is None:
        window = settings.batch_window_ms / 1000
    engine.add_lane(ImageLane(engine, image_runner, preview, window))
    text_options = {"decode_batch": decode_batch} if decode_batch is not None else {}
    engine.add_lane(TextLane(engine, **text_options))
    engine.add_lane(EmbeddingLane(engine, **({"embed": embed} if embed is not None else {})))
    engine.add_lane(DocumentLane(engine, **text_options))
    engine.add_lane(TrainingLane(engine))
    return engine.start()

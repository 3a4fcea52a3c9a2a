"""Model adapters: load a model from its files and run it. They know nothing of queues.

Atelier is offline first: the Hugging Face libraries are told never to reach a hub.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_TELEMETRY", "1")

import transformers.utils.logging  # noqa: E402

# diffusers' pipelines make transformers warn about optional image backends Atelier does not
# use; load failures still raise, and Atelier logs them itself.
transformers.utils.logging.set_verbosity_error()
import diffusers.utils.logging  # noqa: E402

# Progress bars belong to the engine's job progress, not to the server log.
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.disable_progress_bar()

"""The training lane: tunes a LoRA adapter for a text model with transformers' `Trainer`,
one run at a time, on the worker thread.

A run hands the worker back after every optimizer step (`engine.serve_waiting`, from a
trainer callback): waiting image, text and document jobs are served first, so training
only uses the device when nobody waits. The callback also reports the step, the loss and
an estimate, stops on cancel (saving a checkpoint of the last finished step) and saves a
checkpoint every few steps; a new request for the same folder resumes from it.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from webapp.backends import lora_training
from webapp.backends.llm import load_text_model
from webapp.engine.core import Engine
from webapp.engine.jobs import Job, JobStatus, Progress, TrainingResult, TrainingSample
from webapp.engine.lane import Lane
from webapp.engine.requests import ChatMessage, TrainingExample, TrainingRequest
from webapp.errors import ValidationError
from webapp.registry import ModelEntry

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 10  # optimizer steps between checkpoints (and one at every stop)
MAX_TRAINING_TOKENS = 1024  # an example's tokens, prompt and answer together
# Model memory a run needs, in multiples of the base's weights: the weights, activations
# for a small batch, and the adapter's gradients and optimizer moments.
MEMORY_FACTOR = 1.6
EVAL_EXAMPLES = 64  # held-back examples scored for perplexity, at most


@dataclass(frozen=True)
class TrainingProgress:
    """What a running job shows beyond its step: the loss at each step so far."""

    losses: tuple[float, ...]
    perplexity_before: float | None = None


class TrainingLane(Lane):
    kind = "training"

    def __init__(self, engine: Engine, load=load_text_model):
        super().__init__(engine)
        self._load = load
        self._running: Job | None = None

    # -- at submit --------------------------------------------------------------------------

    def admit(self, request: TrainingRequest, job: Job) -> None:
        """The base must be a local transformers text model, the examples must fit it, and
        the run must fit in memory."""
        entry = self.engine.registry().get(request.model, kind="text")
        check_base(entry)
        limit = min(self.engine.tokens.context_length(request.model), MAX_TRAINING_TOKENS)
        for example in (*request.train, *request.held_back):
            messages = [vars(m) for m in (*example.prompt, _answer(example))]
            size = len(self.engine.tokens.chat_ids(request.model, messages, continues=True))
            if size > limit:
                raise ValidationError(
                    f"{example.source or 'An example'} is {size:,} tokens with its prompt; "
                    f"training on {request.model} reads at most {limit:,}. Split it into "
                    "shorter texts, or leave it out.",
                    field="examples",
                )
        self._check_memory(entry)

    def _check_memory(self, entry: ModelEntry) -> None:
        needed = int(entry.size_bytes * MEMORY_FACTOR)
        free = self.engine.memory_budget_bytes() - self.engine.resident_bytes()
        if needed <= free:
            return
        fitting = [
            e.name
            for e in self.engine.registry().of_kind("text")
            if e.format == "transformers" and e.size_bytes * MEMORY_FACTOR <= free
        ]
        advice = (
            f"Models that fit now: {', '.join(fitting)}."
            if fitting
            else "Ask your Atelier admin to unload models on the Models page."
        )
        raise ValidationError(
            f"Tuning {entry.name} needs about {needed / 2**30:.1f} GB of model memory, and "
            f"{max(free, 0) / 2**30:.1f} GB are free. {advice}",
            field="model",
        )

    # -- on the worker ----------------------------------------------------------------------

    def ready_in(self, now: float) -> float | None:
        if self._running is None and self.engine.queued(self.kind):
            return 0.0
        return None

    def step(self, nested: bool) -> None:
        """One whole run, which serves waiting jobs between its optimizer steps."""
        if nested:
            return  # a run never starts inside another lane's step
        jobs = self.engine.take(self.kind, key=lambda job: job.id, max_units=1)
        if not jobs:
            return
        self._running = jobs[0]
        try:
            self._run(jobs[0])
        finally:
            self._running = None
            self.engine.manager.release_memory()

    def _run(self, job: Job) -> None:
        """Load, measure, train, measure again, write the adapter; waiting jobs are served
        between any two examples measured, optimizer steps or answers written."""
        request: TrainingRequest = job.request
        folder = Path(request.folder)
        checkpoint = folder / "checkpoint"
        # 1. A model of the run's own (the text lane's cached one is never trained).
        job._update(stage="Loading the base model")
        entry = self.engine.registry().get(request.model, kind="text")
        device = self.engine.device
        dtype = _training_dtype(device)
        text_model = self._load(entry, device, dtype)
        tokenizer = text_model.tokenizer
        settings = request.settings
        model = lora_training.with_lora(text_model.model, settings)
        model.train()
        # 2. The examples as token ids, the loss on the answers only.
        train = [_encode(tokenizer, example) for example in request.train]
        held = [_encode(tokenizer, example) for example in request.held_back[:EVAL_EXAMPLES]]
        # 3. The held-back perplexity before (a fresh adapter answers as the base does).
        job._update(stage="Measuring the base model on the held-back examples")
        before = lora_training.perplexity(model, held, self.give_way)
        if job.finished:
            return
        # 4. Train, resuming from a checkpoint if a stopped run left one.
        resume = checkpoint if lora_training.has_checkpoint(checkpoint) else None
        callback = _RunCallback(self, job, model, checkpoint, resume, before)
        trainer = lora_training.build_trainer(
            model, tokenizer, train, settings, folder / "work", [callback]
        )
        trainer.remove_callback(PrinterCallback)
        job._update(stage="Training")
        started = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        seconds = time.perf_counter() - started
        if job.finished:  # cancelled, or the engine stopped: the checkpoint stays
            return
        # 5. Evaluate, then write the adapter whole (never a half-written one).
        job._update(stage="Evaluating on the held-back examples")
        after = lora_training.perplexity(model, held, self.give_way)
        chosen = request.held_back[: request.samples]
        prompts = [_prompt_ids(tokenizer, example) for example in chosen]
        answers = lora_training.side_by_side(
            model, tokenizer, prompts, request.sample_tokens, self.give_way
        )
        if job.finished:
            return
        adapter = folder / "adapter"
        lora_training.save_adapter(adapter, model)
        shutil.rmtree(checkpoint, ignore_errors=True)
        shutil.rmtree(folder / "work", ignore_errors=True)
        result = TrainingResult(
            adapter_folder=str(adapter),
            steps=trainer.state.global_step,
            losses=callback.losses,
            perplexity_before=before,
            perplexity_after=after,
            samples=tuple(
                TrainingSample(_asked(example), base, tuned, example.answer)
                for example, (base, tuned) in zip(chosen, answers, strict=True)
            ),
            tokens=callback.tokens,
            seconds=seconds,
            resumed_from=callback.resumed_from,
        )
        self.engine.record(self.kind, time.time() - (job.started_at or time.time()))
        job._finish(JobStatus.DONE, result)

    def give_way(self) -> None:
        """Serve every job waiting in other lanes before going on."""
        self.engine.serve_waiting(self)


class _RunCallback(TrainerCallback):
    """Between optimizer steps: report, save now and then, stop on cancel, serve others.

    The work is done when the step's loss is logged (every step), which is after
    `on_step_end`: a checkpoint then holds the loss of its last step too."""

    def __init__(self, lane, job, model, checkpoint, resume, before):
        self.lane, self.job, self.model = lane, job, model
        self.checkpoint, self.resume, self.before = checkpoint, resume, before
        self.losses: tuple[float, ...] = ()
        self.tokens = 0
        self.resumed_from = 0
        self._tokens_before = 0

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **_):
        if self.resume is not None:
            lora_training.restore_optimizer(self.resume, optimizer, lr_scheduler)
            self.resumed_from = state.global_step
            self._tokens_before = state.num_input_tokens_seen
            self.losses = tuple(entry["loss"] for entry in state.log_history if "loss" in entry)
        self._report(state)

    def on_log(self, args, state, control, logs=None, optimizer=None, lr_scheduler=None, **_):
        """After each optimizer step (logged every step, so the step's loss is known)."""
        if not logs or "loss" not in logs:
            return  # the run's closing summary
        self.losses = (*self.losses, float(logs["loss"]))
        self.tokens = state.num_input_tokens_seen - self._tokens_before
        stop = self.job.finished or self.lane.engine.stopping
        if stop or state.global_step % CHECKPOINT_EVERY == 0:
            self._save(optimizer, lr_scheduler, state)
        if stop:
            control.should_training_stop = True
            return
        self._report(state)
        self.lane.give_way()
        if self.job.finished:  # cancelled while others were served: keep this step
            self._save(optimizer, lr_scheduler, state)
            control.should_training_stop = True

    def _save(self, optimizer, scheduler, state) -> None:
        lora_training.save_checkpoint(self.checkpoint, self.model, optimizer, scheduler, state)

    def _report(self, state) -> None:
        total = state.max_steps or 0
        self.job._update(
            progress=Progress(state.global_step, total),
            stage=f"Training: step {state.global_step:,} of {total:,}",
            details=TrainingProgress(self.losses, self.before),
        )


def check_base(entry: ModelEntry) -> None:
    """A voice is tuned from a local transformers text model: not one served elsewhere,
    not a quantized GGUF file."""
    if entry.format == "remote":
        raise ValidationError(
            f"{entry.name} is served by another server, so Atelier cannot tune it here. "
            "Choose a text model installed in the models folder.",
            field="model",
        )
    if entry.format == "gguf":
        raise ValidationError(
            f"{entry.name} is a quantized GGUF file, which cannot be tuned. Choose the same "
            "model as a transformers folder (safetensors), or ask your Atelier admin to add it.",
            field="model",
        )
    if entry.format != "transformers":
        raise ValidationError(f"{entry.name} is not a text model that can be tuned.", "model")


def _answer(example: TrainingExample) -> ChatMessage:
    return ChatMessage("assistant", example.answer)


def _encode(tokenizer: Any, example: TrainingExample) -> lora_training.Encoded:
    return lora_training.encode(tokenizer, [vars(m) for m in example.prompt], example.answer)


def _prompt_ids(tokenizer: Any, example: TrainingExample) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        [vars(m) for m in example.prompt],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )
    return list(encoded["input_ids"])


def _asked(example: TrainingExample) -> str:
    return example.prompt[-1].content if example.prompt else ""


def _training_dtype(device: Any):
    import torch

    # bfloat16 on a GPU (the Trainer keeps the adapter's update in full precision); on the
    # CPU float32, where bfloat16 training is slow and noisy.
    return torch.bfloat16 if device.type == "cuda" else torch.float32

"""LoRA training with PEFT and transformers' `Trainer`: the examples as token ids with the
loss on the answer only, checkpoints in safetensors and JSON (never pickle), the held-back
perplexity and base/tuned answers side by side.

The engine's training lane drives this; a `TrainerCallback` it passes in reports each
step, hands the worker to waiting jobs and stops on cancel.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import Trainer, TrainerCallback, TrainerState, TrainingArguments

from webapp.atomic import write_folder
from webapp.tuning.presets import TuningSettings

IGNORE = -100  # labels the loss skips: the prompt's tokens and the padding
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
OPTIMIZER_GROUPS = "optimizer.json"
SCHEDULER_FILE = "scheduler.json"
# Attention and MLP projections of Llama, Qwen2, Mistral and Phi-3 style models.
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE where the loss does not look

    @property
    def answer_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def encode(tokenizer: Any, prompt: list[dict[str, str]], answer: str) -> Encoded:
    """A conversation as the model reads it (its own chat template), labelled so that only
    the answer's tokens (and its end-of-turn) are learned."""
    prompt_ids = _ids(
        tokenizer.apply_chat_template(
            prompt, add_generation_prompt=True, tokenize=True, return_dict=True
        )
    )
    full = [*prompt, {"role": "assistant", "content": answer}]
    full_ids = _ids(tokenizer.apply_chat_template(full, tokenize=True, return_dict=True))
    if full_ids[: len(prompt_ids)] != prompt_ids:
        # A template that renders the prompt differently once answered: the answer's own
        # tokens after the prompt, then the end of sequence.
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        full_ids = [*prompt_ids, *answer_ids, tokenizer.eos_token_id]
    labels = [IGNORE] * len(prompt_ids) + full_ids[len(prompt_ids) :]
    return Encoded(full_ids, labels)


def _ids(encoded: Any) -> list[int]:
    return list(encoded["input_ids"])


def collate(pad_id: int) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """Right-padded batches: padding is masked from attention and from the loss."""

    def batch(rows: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(row["input_ids"]) for row in rows)
        ids, labels, mask = [], [], []
        for row in rows:
            missing = longest - len(row["input_ids"])
            ids.append(row["input_ids"] + [pad_id] * missing)
            labels.append(row["labels"] + [IGNORE] * missing)
            mask.append([1] * len(row["input_ids"]) + [0] * missing)
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }

    return batch


def with_lora(model: Any, settings: TuningSettings) -> PeftModel:
    """The base wrapped with a fresh LoRA adapter (its B matrices are zero: at first the
    model answers exactly as the base)."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.05,
        target_modules=[name for name in TARGET_MODULES if name in names] or "all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def build_trainer(
    model: PeftModel,
    tokenizer: Any,
    rows: Sequence[Encoded],
    settings: TuningSettings,
    work_folder: Path,
    callbacks: list[TrainerCallback],
) -> Trainer:
    args = TrainingArguments(
        output_dir=str(work_folder),
        per_device_train_batch_size=settings.batch_size,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="linear",
        logging_steps=1,
        save_strategy="no",  # checkpoints are written by `save_checkpoint`, in safetensors
        report_to=[],
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=model.device.type == "cpu",
        bf16=model.dtype == torch.bfloat16,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        optim="adamw_torch",
        include_num_input_tokens_seen="non_padding",  # tokens per second, as benches report
    )
    dataset = [{"input_ids": row.input_ids, "labels": row.labels} for row in rows]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collate(pad),
        callbacks=callbacks,
    )


# -- checkpoints: safetensors and JSON ------------------------------------------------------


def save_checkpoint(
    folder: Path, model: PeftModel, optimizer: Any, scheduler: Any, state: TrainerState
) -> None:
    """The adapter, the optimizer's moments, the schedule and the Trainer's state, written
    together (a killed write leaves the previous checkpoint whole)."""

    def save(staging: Path) -> None:
        model.save_pretrained(str(staging), safe_serialization=True)
        state.save_to_json(str(staging / STATE_FILE))
        tensors, groups = _optimizer_tensors(optimizer.state_dict())
        save_file(tensors, str(staging / OPTIMIZER_FILE))
        (staging / OPTIMIZER_GROUPS).write_text(json.dumps(groups))
        (staging / SCHEDULER_FILE).write_text(json.dumps(scheduler.state_dict()))

    write_folder(folder, save)


def restore_optimizer(folder: Path, optimizer: Any, scheduler: Any) -> None:
    """Put a checkpoint's optimizer and schedule back (the Trainer restores the adapter
    and its step count itself)."""
    groups = json.loads((folder / OPTIMIZER_GROUPS).read_text())
    tensors = load_file(str(folder / OPTIMIZER_FILE))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(json.loads((folder / SCHEDULER_FILE).read_text()))


def _optimizer_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], list[dict]]:
    tensors = {
        f"{index}.{name}": value.detach().cpu().contiguous()
        for index, values in state_dict["state"].items()
        for name, value in values.items()
        if isinstance(value, torch.Tensor)
    }
    return tensors, state_dict["param_groups"]


def has_checkpoint(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (ADAPTER_WEIGHTS, STATE_FILE, OPTIMIZER_FILE))


def save_adapter(folder: Path, model: PeftModel) -> None:
    """The finished adapter (safetensors and its config), written whole or not at all."""
    write_folder(
        folder, lambda staging: model.save_pretrained(str(staging), safe_serialization=True)
    )


# -- evaluation -----------------------------------------------------------------------------


def _nothing() -> None:
    return None


@torch.no_grad()
def perplexity(
    model: Any, rows: Sequence[Encoded], between: Callable[[], None] = _nothing
) -> float:
    """The perplexity of the answers' tokens (the prompts are not scored); `between()` is
    called after each example (the engine serves waiting jobs there)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for row in rows:
            ids = torch.tensor([row.input_ids], device=model.device)
            labels = torch.tensor([row.labels], device=model.device)
            loss = model(input_ids=ids, labels=labels).loss
            total += float(loss) * row.answer_tokens
            count += row.answer_tokens
            between()
    finally:
        model.train(was_training)
    return math.exp(total / count) if count else float("nan")


@torch.no_grad()
def side_by_side(
    model: PeftModel,
    tokenizer: Any,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    between: Callable[[], None] = _nothing,
) -> list[tuple[str, str]]:
    """Greedy answers to the same prompts from the base (adapter off) and the tuned model;
    `between()` is called after each answer."""
    was_training = model.training
    model.eval()
    answers = []
    try:
        for prompt in prompts:
            ids = torch.tensor([prompt], device=model.device)
            with model.disable_adapter():
                base = _greedy(model, tokenizer, ids, max_new_tokens)
            between()
            answers.append((base, _greedy(model, tokenizer, ids, max_new_tokens)))
            between()
    finally:
        model.train(was_training)
    return answers


def _greedy(model: Any, tokenizer: Any, ids: torch.Tensor, max_new_tokens: int) -> str:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=pad,
    )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()

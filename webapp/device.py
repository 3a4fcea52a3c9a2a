"""The compute device: which one, which dtype for which kind of model, how much memory."""

from __future__ import annotations

from dataclasses import dataclass

import psutil
import torch

from webapp.errors import SettingsError
from webapp.settings import Settings, env_name

# SDXL's VAE overflows in float16 (black or NaN images) unless a patched VAE is used.
DIFFUSION_FAMILIES_NEEDING_BF16 = frozenset({"sdxl", "sdxl-turbo"})

# Share of free memory the resident models may take when no budget is set.
AUTO_BUDGET_SHARE_GPU = 0.85
AUTO_BUDGET_SHARE_CPU = 0.5

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def resolve_device(settings: Settings) -> torch.device:
    """The device the settings ask for, checked against what the machine has."""
    wanted = settings.device
    if wanted == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if wanted == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SettingsError(
            f"{env_name('device')}={wanted} but this machine has no usable CUDA GPU "
            "(or PyTorch is a CPU build). Use auto or cpu, or install a CUDA build of PyTorch.",
            field="device",
        )
    device = torch.device(wanted if ":" in wanted else "cuda:0")
    if device.index >= torch.cuda.device_count():
        raise SettingsError(
            f"{env_name('device')}={wanted} but only {torch.cuda.device_count()} GPU(s) "
            f"exist: use cuda:0 to cuda:{torch.cuda.device_count() - 1}.",
            field="device",
        )
    return device


def cpu_has_bf16_matrix_units() -> bool:
    """True on CPUs with AMX tiles for bfloat16 (Intel Sapphire Rapids and later), where
    language models run markedly faster in bfloat16; elsewhere bfloat16 is emulated."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in cpuinfo)
    except OSError:
        return False


def dtype_for(kind: str, family: str, device: torch.device, settings: Settings) -> torch.dtype:
    """On the CPU fp32, but bf16 for language models where the CPU has bf16 matrix units;
    on CUDA fp16 for diffusion (bf16 where a family needs it), bf16 for LLMs."""
    if settings.dtype != "auto":
        return DTYPES[settings.dtype]
    if device.type != "cuda":
        text = kind in ("text", "embedding")
        return torch.bfloat16 if text and cpu_has_bf16_matrix_units() else torch.float32
    if kind == "image":
        return torch.bfloat16 if family in DIFFUSION_FAMILIES_NEEDING_BF16 else torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int
    free_bytes: int


def memory_info(device: torch.device) -> MemoryInfo:
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return MemoryInfo(total_bytes=total, free_bytes=free)
    memory = psutil.virtual_memory()
    return MemoryInfo(total_bytes=memory.total, free_bytes=memory.available)


def memory_budget_bytes(settings: Settings, device: torch.device) -> int:
    if settings.memory_budget_gb is not None:
        return int(settings.memory_budget_gb * 1024**3)
    info = memory_info(device)
    if device.type == "cuda":
        return int(info.free_bytes * AUTO_BUDGET_SHARE_GPU)
    return int(info.total_bytes * AUTO_BUDGET_SHARE_CPU)


def free_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()

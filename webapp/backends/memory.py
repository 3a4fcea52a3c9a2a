"""How many bytes a loaded model holds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def modules_of(obj: Any) -> Iterable[torch.nn.Module]:
    """The torch modules inside a model handle (a module, a pipeline, or a dataclass of them)."""
    if isinstance(obj, torch.nn.Module):
        yield obj
        return
    components = getattr(obj, "components", None)
    if isinstance(components, dict):
        values = components.values()
    else:
        values = vars(obj).values() if hasattr(obj, "__dict__") else ()
    for value in values:
        if isinstance(value, torch.nn.Module):
            yield value


def module_bytes(obj: Any) -> int:
    total = 0
    for module in modules_of(obj):
        for tensor in [*module.parameters(), *module.buffers()]:
            total += tensor.numel() * tensor.element_size()
    return total

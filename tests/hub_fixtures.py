"""A fake Hub for the install tests: tiny models served in the Hub's layout on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import torch
from safetensors.torch import save_file

from webapp.hub.server import FakeHub, repo_from_folder

PORTS = range(8620, 8630)
TOKEN = "hf_test_0123456789secret"


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def make_lora_repo(folder: Path, megabytes: int = 3) -> Path:
    """A repo holding one LoRA file of a few MB (several download chunks) and a README."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(megabytes * 2**18, generator=generator)  # 4 bytes each
    save_file(
        {"lora_unet_mid_block.lora_down.weight": values.reshape(-1, 256)},
        str(folder / "pytorch_lora_weights.safetensors"),
    )
    (folder / "README.md").write_text("---\nlicense: openrail++\n---\nA test LoRA.\n")
    return folder


def make_pickle_repo(folder: Path) -> Path:
    """A transformers repo whose weights are pickle only."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    torch.save({"weight": torch.zeros(2)}, folder / "pytorch_model.bin")
    return folder


def start_hub(tiny_models_dir: Path, repos_dir: Path) -> FakeHub:
    hub = FakeHub(free_port())
    hub.add(repo_from_folder("test-org/little-sd", tiny_models_dir / "tiny-sd"))
    hub.add(repo_from_folder("test-org/little-llm", tiny_models_dir / "tiny-llm"))
    hub.add(
        repo_from_folder(
            "test-org/gated-llm",
            tiny_models_dir / "tiny-llm",
            gated=True,
            token=TOKEN,
            license="llama3.2",
        )
    )
    hub.add(
        repo_from_folder(
            "test-org/lcm-lora", make_lora_repo(repos_dir / "lora"), license="openrail++"
        )
    )
    hub.add(repo_from_folder("test-org/pickle-only", make_pickle_repo(repos_dir / "pickle")))
    return hub

"""Adding models without a network (a path inside the import folders, an upload) and
deleting them."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from tests.fakes import Recorder
from webapp.engine.factory import build_engine
from webapp.errors import Forbidden, ValidationError
from webapp.registry import LORA_DIR
from webapp.services import build_services
from webapp.services.images import ImageForm
from webapp.settings import Settings
from webapp.testmodels import make_test_checkpoint, make_test_lora


@pytest.fixture(scope="module")
def outside(tiny_models_dir, tmp_path_factory) -> Path:
    """An import folder on the server with one model of each format."""
    folder = tmp_path_factory.mktemp("imports")
    shutil.copytree(tiny_models_dir / "tiny-sd", folder / "house-sd")
    shutil.copytree(tiny_models_dir / "tiny-llm", folder / "house-llm")
    torch.save({"weight": torch.zeros(2)}, folder / "house-llm" / "training_state.bin")
    make_test_checkpoint(tiny_models_dir / "tiny-sd", folder / "house-checkpoint.safetensors")
    make_test_lora(tiny_models_dir / "tiny-sd", folder / "house-lora.safetensors")
    _gguf(folder / "house-gguf.gguf")
    (folder / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (folder / "pickled").mkdir()
    (folder / "pickled" / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    torch.save({"weight": torch.zeros(2)}, folder / "pickled" / "pytorch_model.bin")
    return folder


def _gguf(path: Path) -> Path:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_token_list(["<s>", "</s>", "hello", "world"])
    writer.add_tensor("token_embd.weight", torch.ones(4, 8).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def services(make_services, models_dir, outside):
    return make_services(models_dir, import_roots=(outside,))


@pytest.mark.parametrize(
    ("source", "kind", "fmt"),
    [
        ("house-sd", "image", "diffusers"),
        ("house-llm", "text", "transformers"),
        ("house-checkpoint.safetensors", "image", "single-file"),
        ("house-gguf.gguf", "text", "gguf"),
    ],
)
def test_each_model_format_imports_from_a_server_folder(
    services, admin, outside, source, kind, fmt
):
    entry = services.local_models.import_path(str(outside / source), admin)

    assert (entry.kind, entry.format) == (kind, fmt)
    assert services.engine.registry().get(entry.name, kind=kind).ready
    assert (outside / source).exists(), "the source must be left as it was"


def test_an_imported_folder_leaves_pickle_files_behind(services, admin, outside, models_dir):
    services.local_models.import_path(str(outside / "house-llm"), admin, name="llm-copy")

    assert (models_dir / "llm-copy" / "model.safetensors").is_file()
    assert not (models_dir / "llm-copy" / "training_state.bin").exists()


def test_a_lora_imports_into_the_loras_folder(services, admin, outside, models_dir):
    entry = services.local_models.import_path(str(outside / "house-lora.safetensors"), admin)

    assert entry.kind == "lora"
    assert (models_dir / LORA_DIR / "house-lora.safetensors").is_file()
    assert "house-lora" in services.engine.registry().loras


def test_an_uploaded_lora_is_checked_and_added(services, admin, outside, models_dir):
    data = (outside / "house-lora.safetensors").read_bytes()

    entry = services.local_models.import_upload(
        "my style.safetensors", data, admin, name="my-style"
    )

    assert entry.kind == "lora" and (models_dir / LORA_DIR / "my-style.safetensors").is_file()


def test_an_upload_in_a_pickle_format_or_over_the_limit_is_refused(
    make_services, models_dir, admin
):
    services = make_services(models_dir, upload_max_mb=1)
    with pytest.raises(ValidationError) as pickle:
        services.local_models.import_upload("model.ckpt", b"PK\x03\x04", admin)
    assert pickle.value.field == "upload" and ".safetensors" in pickle.value.message

    with pytest.raises(ValidationError) as large:
        services.local_models.import_upload("big.safetensors", bytes(2 * 2**20), admin)
    assert "1 MB" in large.value.message


def test_a_path_outside_the_import_folders_is_refused(services, admin, tmp_path, models_dir):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(models_dir / "tiny-llm", elsewhere)

    with pytest.raises(ValidationError) as refused:
        services.local_models.import_path(str(elsewhere), admin, name="sneaky")

    assert "outside the import folders" in refused.value.message
    assert refused.value.field == "source"
    assert not (models_dir / "sneaky").exists()


def test_a_link_out_of_the_import_folders_is_refused(services, admin, outside, models_dir):
    link = outside / "link-out"
    link.symlink_to(models_dir / "tiny-llm")
    try:
        with pytest.raises(ValidationError) as refused:
            services.local_models.import_path(str(link), admin, name="linked")
    finally:
        link.unlink()

    assert "outside the import folders" in refused.value.message


def test_import_folders_must_be_set_first(make_services, models_dir, admin, outside):
    services = make_services(models_dir)

    with pytest.raises(ValidationError) as unset:
        services.local_models.import_path(str(outside / "house-sd"), admin)

    assert "ATELIER_IMPORT_ROOTS" in unset.value.message


def test_a_damaged_or_pickle_model_is_refused_and_nothing_is_added(
    services, admin, outside, models_dir
):
    def visible():
        return sorted(p.name for p in models_dir.iterdir() if not p.name.startswith("."))

    before = visible()
    with pytest.raises(ValidationError) as broken:
        services.local_models.import_path(str(outside / "broken.safetensors"), admin)
    with pytest.raises(ValidationError) as pickled:
        services.local_models.import_path(str(outside / "pickled"), admin)

    assert "cannot be added" in broken.value.message
    assert "no weight files" in pickled.value.message or "pickle" in pickled.value.message
    assert visible() == before
    assert list((models_dir / ".installs").iterdir()) == [], "what was checked is left behind"


def test_a_name_that_collides_with_an_installed_model_is_refused(services, admin, outside):
    with pytest.raises(ValidationError) as taken:
        services.local_models.import_path(str(outside / "house-sd"), admin, name="tiny-sd")

    assert taken.value.field == "name" and "already installed" in taken.value.message
    assert services.engine.registry().get("tiny-sd").path.is_dir()


def test_deleting_a_model_removes_it_and_is_audited(services, admin, models_dir):
    services.local_models.remove("tiny-llm", admin)

    assert not (models_dir / "tiny-llm").exists()
    assert "tiny-llm" not in services.engine.registry().entries
    assert "models.remove" in services.audit.export_csv(admin)


def test_a_model_a_job_uses_cannot_be_deleted(models_dir, tmp_path, admin):
    settings = Settings(models_dir=models_dir, data_dir=tmp_path / "data", device="cpu")
    recorder = Recorder()
    recorder.gate.clear()
    services = build_services(settings, engine=build_engine(settings, image_runner=recorder))
    try:
        run = services.images.generate(
            ImageForm(prompt="a cat", model="tiny-sd", steps=2, width=64, height=64), admin
        )
        recorder.in_first_call.wait(60)
        with pytest.raises(ValidationError) as busy:
            services.local_models.remove("tiny-sd", admin)
        assert "used by 1 job" in busy.value.message
        assert (models_dir / "tiny-sd").is_dir()
        recorder.gate.set()
        services.images.finish(run, admin)

        services.local_models.remove("tiny-sd", admin)
        assert not (models_dir / "tiny-sd").exists()
    finally:
        recorder.gate.set()
        services.close()


def test_a_member_cannot_import_or_delete(services, member, outside):
    with pytest.raises(Forbidden):
        services.local_models.import_path(str(outside / "house-sd"), member)
    with pytest.raises(Forbidden):
        services.local_models.remove("tiny-sd", member)


def test_what_a_killed_import_left_behind_is_removed_at_the_next_start(make_services, models_dir):
    left = models_dir / ".installs" / "import-0123456789"
    (left / "ready" / "half").mkdir(parents=True)
    (left / "ready" / "half" / "model.safetensors").write_bytes(b"\0" * 10)
    os.utime(left, (time.time() - 3600, time.time() - 3600))

    make_services(models_dir)

    assert not left.exists()

"""Installing from a Hub through huggingface_hub, against a fake Hub on 127.0.0.1."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.hub_fixtures import TOKEN, start_hub
from webapp.errors import AtelierError, Forbidden, ValidationError
from webapp.hub.book import CANCELLED, DONE, FAILED, INTERRUPTED
from webapp.registry import LORA_DIR

WAIT = 120


@pytest.fixture
def hub(tiny_models_dir, tmp_path):
    with start_hub(tiny_models_dir, tmp_path / "repos") as running:
        yield running


@pytest.fixture
def installer(make_services, models_dir, hub):
    return make_services(models_dir, hf_endpoint=hub.url)


def install_and_wait(services, repo_id, user, **options):
    install = services.installs.install_repo(repo_id, user, **options)
    return services.installs.wait(install.id, WAIT)


def test_an_installed_image_model_appears_in_the_registry_without_a_restart(
    installer, admin, models_dir
):
    done = install_and_wait(installer, "test-org/little-sd", admin)

    assert done.status == DONE, done.error
    entry = installer.engine.registry().get("little-sd", kind="image")
    assert entry.format == "diffusers" and entry.path == models_dir / "little-sd"
    assert not (entry.path / ".cache").exists()
    assert [m.name for m in installer.models.ready_models(admin, "image")].count("little-sd") == 1
    progress = installer.installs.progress(done.id, admin)
    assert progress.fraction == 1.0


def test_an_installed_model_makes_an_image(installer, admin):
    from webapp.services.images import ImageForm

    assert install_and_wait(installer, "test-org/little-sd", admin).status == DONE
    run = installer.images.generate(
        ImageForm(prompt="a red square", model="little-sd", steps=2, width=64, height=64), admin
    )
    stored = installer.images.finish(run, admin)
    assert stored and stored[0].path.is_file()


def test_a_lora_repo_installs_into_the_loras_folder(installer, admin, models_dir):
    done = install_and_wait(installer, "test-org/lcm-lora", admin, accept_license=True)

    assert done.status == DONE, done.error
    assert (models_dir / LORA_DIR / "lcm-lora.safetensors").is_file()
    assert installer.engine.registry().loras["lcm-lora"].ready


def test_looking_up_a_repo_lists_only_safe_files_with_their_sizes_and_hashes(installer, admin):
    plan = installer.installs.look_up("test-org/little-llm", admin)

    assert plan.layout == "transformers"
    assert {f.path for f in plan.files} >= {"config.json", "model.safetensors"}
    weights = next(f for f in plan.files if f.path == "model.safetensors")
    assert len(weights.sha256) == 64 and weights.size > 0
    assert plan.total_bytes == sum(f.size for f in plan.files)
    assert plan.license == "apache-2.0" and not plan.needs_acceptance


def test_a_pickle_only_repo_is_refused_with_what_to_do(installer, admin, models_dir):
    with pytest.raises(AtelierError) as refused:
        installer.installs.look_up("test-org/pickle-only", admin)

    assert "pickle" in refused.value.message and "safetensors" in refused.value.message
    assert refused.value.field == "repo_id"
    assert not (models_dir / "pickle-only").exists()


def test_a_repo_that_does_not_exist_says_to_check_the_spelling(installer, admin, hub):
    with pytest.raises(AtelierError) as missing:
        installer.installs.look_up("test-org/no-such-model", admin)

    assert "check the spelling" in missing.value.message
    assert missing.value.field == "repo_id"


def test_a_repo_id_with_a_typo_is_refused_before_asking_the_hub(installer, admin, hub):
    with pytest.raises(ValidationError) as typo:
        installer.installs.look_up("little-sd", admin)

    assert "owner/name" in typo.value.message and typo.value.field == "repo_id"
    assert hub.log == []


def test_a_hub_that_is_down_or_unreachable_is_reported_within_seconds(
    make_services, models_dir, admin, hub
):
    hub.faults.down = True
    services = make_services(models_dir, hf_endpoint=hub.url)
    with pytest.raises(AtelierError) as down:
        services.installs.look_up("test-org/little-sd", admin)
    assert "503" in down.value.message and down.value.field == "endpoint"

    nowhere = make_services(models_dir, hf_endpoint="http://127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(AtelierError) as unreachable:
        nowhere.installs.look_up("test-org/little-sd", admin)
    assert time.monotonic() - started < 15, "no network must be said within seconds"
    assert "Cannot reach" in unreachable.value.message
    assert "ATELIER_HF_ENDPOINT" in unreachable.value.message


def test_a_dropped_connection_resumes_where_it_stopped(installer, admin, hub, models_dir):
    weights = "pytorch_lora_weights.safetensors"
    hub.faults.drop_after[weights] = 2_621_440  # 2.5 MiB of 3 MiB, then the connection drops

    done = install_and_wait(installer, "test-org/lcm-lora", admin, accept_license=True)

    assert done.status == DONE, done.error
    ranges = hub.downloads(weights)
    assert ranges[0] is None and ranges[1].startswith("bytes=")
    assert int(ranges[1].removeprefix("bytes=").split("-")[0]) >= 2**20
    assert installer.engine.registry().loras["lcm-lora"].ready


def test_an_interrupted_install_resumes_without_fetching_verified_files_again(
    make_services, models_dir, admin, hub
):
    first = make_services(models_dir, hf_endpoint=hub.url)
    hub.faults.down = False
    install = first.installs.install_repo("test-org/little-sd", admin)
    first.installs.wait(install.id, WAIT)
    # As if Atelier had stopped just before moving the model in: the files are there.
    record = first.installs._book.get(install.id)
    shutil.rmtree(models_dir / "little-sd")
    first.installs._book.update(record, status="downloading", owner_pid=2**22 + 1)
    staged = first.installs._book.files(record)
    shutil.copytree(first.settings.models_dir / "tiny-sd", staged, dirs_exist_ok=True)

    again = make_services(models_dir, hf_endpoint=hub.url)
    assert again.installs.progress(install.id, admin).install.status == INTERRUPTED
    hub.log.clear()
    again.installs.retry(install.id, admin)
    done = again.installs.wait(install.id, WAIT)

    assert done.status == DONE, done.error
    assert hub.downloads("unet/diffusion_pytorch_model.safetensors") == []
    assert again.engine.registry().get("little-sd").ready


def test_a_checksum_mismatch_fails_the_install_and_leaves_nothing_visible(
    installer, admin, hub, models_dir
):
    hub.faults.corrupt.add("unet/diffusion_pytorch_model.safetensors")

    done = install_and_wait(installer, "test-org/little-sd", admin)

    assert done.status == FAILED
    assert "checksum" in done.error and "Retry" in done.error
    assert not (models_dir / "little-sd").exists()
    assert "little-sd" not in installer.engine.registry().entries
    staged = installer.installs._book.files(done)
    assert not (staged / "unet" / "diffusion_pytorch_model.safetensors").exists()


def test_a_gated_repo_needs_a_token_and_never_stores_it(installer, admin, hub, models_dir):
    plan = installer.installs.look_up("test-org/gated-llm", admin)
    assert plan.gated and plan.access == "needs-token" and plan.needs_acceptance
    with pytest.raises(ValidationError) as no_token:
        installer.installs.install(plan, admin, accept_license=True)
    assert no_token.value.field == "token" and "access token" in no_token.value.message

    wrong = installer.installs.look_up("test-org/gated-llm", admin, token="hf_wrong")
    assert wrong.access == "token-refused"

    plan = installer.installs.look_up("test-org/gated-llm", admin, token=TOKEN)
    assert plan.access == "granted"
    with pytest.raises(ValidationError) as licence:
        installer.installs.install(plan, admin, token=TOKEN)
    assert licence.value.field == "accept_license" and "llama3.2" in licence.value.message

    install = installer.installs.install(plan, admin, token=TOKEN, accept_license=True)
    done = installer.installs.wait(install.id, WAIT)

    assert done.status == DONE, done.error
    assert installer.engine.registry().get("gated-llm", kind="text").ready
    written = b"".join(p.read_bytes() for p in models_dir.rglob("*") if p.is_file())
    assert TOKEN.encode() not in written
    audit = installer.audit.export_csv(admin)
    assert TOKEN not in audit and "gated-llm" in audit


def test_a_wrong_token_fails_the_download_with_what_to_do(installer, admin, hub):
    plan = installer.installs.look_up("test-org/gated-llm", admin, token=TOKEN)

    install = installer.installs.install(plan, admin, token="hf_wrong", accept_license=True)
    done = installer.installs.wait(install.id, WAIT)

    assert done.status == FAILED and done.error_field == "token"
    assert "token was refused" in done.error and "hf_wrong" not in done.error


def test_a_name_that_is_taken_is_refused_before_downloading(installer, admin, hub):
    plan = installer.installs.look_up("test-org/little-sd", admin)
    hub.log.clear()

    with pytest.raises(ValidationError) as taken:
        installer.installs.install(plan, admin, name="tiny-sd")

    assert taken.value.field == "name" and "already installed" in taken.value.message
    assert hub.downloads("safetensors") == []


def test_too_little_free_disk_is_refused_before_downloading(installer, admin, hub, monkeypatch):
    plan = installer.installs.look_up("test-org/little-sd", admin)
    monkeypatch.setattr("webapp.services.installs.free_bytes", lambda folder: 1000)

    with pytest.raises(ValidationError) as full:
        installer.installs.install(plan, admin)

    assert full.value.field == "disk" and "Free some space" in full.value.message
    assert installer.installs.installs(admin) == []


def test_a_cancelled_install_deletes_what_it_fetched(installer, admin, hub, models_dir):
    hub.faults.pause = 0.05  # about 1 MB/s: the install is still running when cancelled
    install = installer.installs.install_repo("test-org/lcm-lora", admin, accept_license=True)
    while installer.installs.progress(install.id, admin).done_bytes < 2**16:
        time.sleep(0.05)

    cancelled = installer.installs.cancel(install.id, admin)

    assert cancelled.status == CANCELLED
    assert not installer.installs._book.files(cancelled).exists()
    assert not (models_dir / LORA_DIR / "lcm-lora.safetensors").exists()


def test_progress_reports_bytes_speed_and_time_left_while_downloading(installer, admin, hub):
    hub.faults.pause = 0.02
    install = installer.installs.install_repo("test-org/lcm-lora", admin, accept_license=True)
    seen = []
    while (progress := installer.installs.progress(install.id, admin)).install.active:
        seen.append(progress)
        time.sleep(0.2)

    moving = [p for p in seen if p.bytes_per_second]
    assert moving, "no speed was ever reported"
    assert all(p.seconds_left >= 0 and 0 < p.fraction <= 1 for p in moving)
    assert [p.done_bytes for p in moving] == sorted(p.done_bytes for p in moving)
    assert installer.installs.wait(install.id, WAIT).status == DONE


def test_a_member_cannot_install_models(installer, member):
    with pytest.raises(Forbidden):
        installer.installs.look_up("test-org/little-sd", member)


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        ("https://example.com/licence", "https://example.com/licence"),
        ("LICENSE.md", "{hub}/org/m/blob/abc/LICENSE.md"),
        ("javascript:alert(1)", "{hub}/org/m"),
        ("https://x.test/a) [b](javascript:1", "{hub}/org/m"),
        (None, "{hub}/org/m"),
    ],
)
def test_the_licence_link_is_a_web_address_or_the_repo_page(link, shown):
    from webapp.hub.worker import license_page

    assert license_page(link, "http://hub", "org/m", "abc") == shown.format(hub="http://hub")


def test_a_full_disk_is_explained_with_what_to_do():
    import errno

    from webapp.hub.worker import explain

    for code in (errno.ENOSPC, errno.EDQUOT):
        error = explain(OSError(code, "No space left on device"), "org/m", "http://hub", None)
        assert error.field == "disk"
        assert "disk holding the models dir is full" in error.message and "Retry" in error.message

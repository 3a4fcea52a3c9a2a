"""Fifty people at once against the engine and the services, with a slow stand-in pipeline."""

from tests.conftest import REPO
from webapp.bench.churn import bench_churn
from webapp.settings import Settings


def test_fifty_people_are_all_served_or_told_when_to_come_back(tiny_models_dir, tmp_path):
    settings = Settings(
        models_dir=tiny_models_dir,
        data_dir=tmp_path / "data",
        library_dir=REPO / "library",
        device="cpu",
        queue_max_per_user=2,
        queue_max_total=20,
    )
    figures = bench_churn(settings, people=50, seconds=6, step_seconds=0.005)
    assert figures["served"] > 0 and figures["busy"] > 0  # the caps were reached
    assert figures["hung"] == figures["failed"] == figures["busy_without_a_time"] == 0
    assert figures["finished_image_jobs_holding_pictures"] == 0

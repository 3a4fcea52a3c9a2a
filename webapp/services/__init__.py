"""Services: what pages, the CLI and tests call. Built in one place, `build_services`."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.engine import Engine
from webapp.image_store import ImageStore
from webapp.services.accounts import AccountsService
from webapp.services.audit import AuditService
from webapp.services.brand_kits import BrandKitService
from webapp.services.chats import ChatKeeper
from webapp.services.embeddings import EmbeddingService
from webapp.services.history import HistoryService
from webapp.services.image_saving import ImageSaver
from webapp.services.images import ImageService
from webapp.services.installs import InstallService
from webapp.services.job_audit import check_quota, record_job_end
from webapp.services.job_board import JobBoard
from webapp.services.jobs import JobService
from webapp.services.local_models import LocalModelService
from webapp.services.models import ModelService
from webapp.services.system import SystemService
from webapp.services.team import TeamServices, build_team_services
from webapp.services.text import TextService
from webapp.services.voices import VoiceService, tool_voices
from webapp.settings import Settings


@dataclass(frozen=True)
class ApiServices:
    """What the API calls: the same engine, picture saver and store as the pages, with its
    jobs marked `client="api"` in the queue and the audit log."""

    images: ImageService
    text: TextService
    embeddings: EmbeddingService


@dataclass
class Services:
    settings: Settings
    engine: Engine
    team: TeamServices
    jobs: JobService
    images: ImageService
    models: ModelService
    installs: InstallService
    local_models: LocalModelService
    system: SystemService
    text: TextService
    kits: BrandKitService
    voices: VoiceService
    saver: ImageSaver
    chats: ChatKeeper
    api: ApiServices
    owns_team: bool = True  # False: the team services were given, and their owner closes them
    board: JobBoard | None = None  # the jobs board other app replicas read (shared_queue)

    @property
    def accounts(self) -> AccountsService:
        return self.team.accounts

    @property
    def history(self) -> HistoryService:
        return self.team.history

    @property
    def audit(self) -> AuditService:
        return self.team.audit

    def close(self) -> None:
        """Stop the engine (cancelling what runs), write what finished, close the store (if
        these services opened it)."""
        if self.board is not None:
            self.board.stop()
        self.engine.shutdown()
        self.saver.close()
        self.chats.close()
        if self.owns_team:
            self.team.close()


def build_services(
    settings: Settings,
    engine: Engine | None = None,
    client: str = "page",
    team: TeamServices | None = None,
) -> Services:
    """Every service, around one engine (the one given, or a new one these services own)
    and the store (the team services given, which the app also uses for signing in before
    the engine has started, or new ones): every job is audited when it ends, quotas are
    checked at submit, and finished pictures, tool answers and chat turns are kept at once."""
    owns_team = team is None
    team = team or build_team_services(settings, client=client)
    if engine is None:
        from webapp.engine.factory import build_engine

        engine = build_engine(settings)
    saver = ImageSaver(ImageStore(settings.data_dir), team.history)
    chats = ChatKeeper(team.history)
    engine.add_end_listener(saver.job_ended)
    engine.add_end_listener(chats.job_ended)
    engine.add_end_listener(record_job_end(team.audit))
    engine.add_submit_check(check_quota(team.audit))
    models = ModelService(engine, team.audit, client)
    if client == "page":
        models.pin_at_start()
    voices = VoiceService(settings, engine, team.store, team.audit, client)
    engine.add_end_listener(voices.job_ended)
    board = None
    if settings.shared_queue and client == "page":
        board = JobBoard(team.store, engine)
        board.start()
    return Services(
        settings=settings,
        engine=engine,
        team=team,
        jobs=JobService(engine, team.audit, client, board),
        images=ImageService(settings, engine, saver, client),
        models=models,
        installs=InstallService(settings, engine, team.audit, client),
        local_models=LocalModelService(settings, engine, team.audit, client),
        system=SystemService(settings, engine, team.audit, client),
        text=TextService(settings, engine, chats, client, tuned_voices=tool_voices(voices)),
        kits=BrandKitService(settings, team.audit, client),
        voices=voices,
        saver=saver,
        chats=chats,
        api=ApiServices(
            images=ImageService(settings, engine, saver, "api"),
            text=TextService(settings, engine, chats, "api", tuned_voices=tool_voices(voices)),
            embeddings=EmbeddingService(engine, "api"),
        ),
        owns_team=owns_team,
        board=board,
    )

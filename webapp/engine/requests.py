"""Requests as plain data: the same request comes from a page, the CLI, the API or a test.

Each request's `check()` owns its validation; services add only policy (styles, locked
fields, quotas). Nothing here imports torch, so pages and data modules stay light.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from webapp.errors import ValidationError

SCHEDULERS = ("euler", "euler_a", "dpmpp_2m_karras", "ddim", "lcm")
ROLES = ("system", "user", "assistant")
MAX_IMAGES_PER_REQUEST = 4
MIN_SIDE, MAX_SIDE = 64, 4096
MAX_STEPS = 150
MAX_NEW_TOKENS = 32768
# Dividing logits by a temperature this small overflows them to infinity (and the
# probabilities to NaN), so anything below it samples greedily, which is what it means.
GREEDY_BELOW_TEMPERATURE = 0.01
SEED_LIMIT = 2**63


def random_seed() -> int:
    """The seed a request gets when the person leaves it blank."""
    return secrets.randbelow(2**31)


def check_seed(seed: int) -> None:
    if not 0 <= seed < SEED_LIMIT:
        raise ValidationError("The seed must be a whole number from 0.", field="seed")


def check_mask_matches(picture_size: tuple[int, int], mask_size: tuple[int, int]) -> None:
    """A mask says where a picture changes, pixel for pixel: the sizes must match."""
    if mask_size != picture_size:
        raise ValidationError(
            f"The mask is {mask_size[0]}×{mask_size[1]} but the picture is "
            f"{picture_size[0]}×{picture_size[1]}: use a mask of the same size.",
            field="mask",
        )


@dataclass(frozen=True)
class LoraWeight:
    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class ImageRequest:
    kind: ClassVar[str] = "image"

    model: str
    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int = 30
    guidance: float = 7.5
    seed: int = 0
    num_images: int = 1
    scheduler: str = "euler"
    # Image to image and inpainting: a PIL image, how much to change it, a mask (white = change).
    init_image: Any = field(default=None, compare=False)
    strength: float = 0.75
    mask: Any = field(default=None, compare=False)
    loras: tuple[LoraWeight, ...] = ()
    # The style preset the prompt was made with, for the recipe (the prompt has it applied).
    style: str | None = None

    @property
    def mode(self) -> str:
        if self.init_image is None:
            return "text-to-image"
        return "inpaint" if self.mask is not None else "image-to-image"

    @property
    def summary(self) -> str:
        """What the request is about, in the person's own words (for the Queue page)."""
        return self.prompt

    def check(self) -> None:
        if not self.prompt.strip():
            raise ValidationError("Write a prompt describing the picture.", field="prompt")
        for name, value in (("width", self.width), ("height", self.height)):
            if value % 8 or not MIN_SIDE <= value <= MAX_SIDE:
                raise ValidationError(
                    f"{name.capitalize()} {value} must be a multiple of 8 "
                    f"between {MIN_SIDE} and {MAX_SIDE}.",
                    field=name,
                )
        if not 1 <= self.steps <= MAX_STEPS:
            raise ValidationError(
                f"Steps {self.steps} must be between 1 and {MAX_STEPS}.", field="steps"
            )
        if not 0 <= self.guidance <= 30:
            raise ValidationError(
                f"Guidance {self.guidance} must be between 0 and 30.", field="guidance"
            )
        if not 1 <= self.num_images <= MAX_IMAGES_PER_REQUEST:
            raise ValidationError(
                f"Choose 1 to {MAX_IMAGES_PER_REQUEST} images.", field="num_images"
            )
        if self.scheduler not in SCHEDULERS:
            raise ValidationError(
                f"Unknown scheduler {self.scheduler!r}: choose one of {', '.join(SCHEDULERS)}.",
                field="scheduler",
            )
        if not 0 < self.strength <= 1:
            raise ValidationError(
                f"Strength {self.strength} must be above 0 and at most 1.", field="strength"
            )
        if self.mask is not None and self.init_image is None:
            raise ValidationError("A mask needs a picture to paint on.", field="mask")
        if self.mask is not None:
            check_mask_matches(self.init_image.size, self.mask.size)
        names = [lora.name for lora in self.loras]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ValidationError(
                f"LoRA {', '.join(twice)} is listed twice: keep one row for it.", field="loras"
            )
        for lora in self.loras:
            if not -2 <= lora.weight <= 2:
                raise ValidationError(
                    f"LoRA {lora.name} weight must be between -2 and 2.", field="loras"
                )
        check_seed(self.seed)


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class VoiceAdapter:
    """A tuned voice's LoRA adapter, switched on for one request on the cached base."""

    name: str  # unique per voice version: "voice-12"
    folder: str  # the adapter's folder (safetensors and its config)


@dataclass(frozen=True)
class TextRequest:
    kind: ClassVar[str] = "text"

    model: str
    messages: tuple[ChatMessage, ...]
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    # What the Queue page calls the job (a tool's name); the last message otherwise.
    title: str = ""
    # The last message is the start of the answer (an assistant message) and the model goes
    # on from where it ends: Continue after an answer was stopped or cut at the limit.
    continues: bool = False
    # A tuned voice: its adapter runs on `model` for this request alone.
    adapter: VoiceAdapter | None = None

    @property
    def sampling_temperature(self) -> float:
        """The temperature sampling uses: 0 (greedy) for anything below the floor."""
        return 0.0 if self.temperature < GREEDY_BELOW_TEMPERATURE else self.temperature

    @property
    def summary(self) -> str:
        return self.title or (self.messages[-1].content if self.messages else "")

    @property
    def answer_so_far(self) -> str:
        """What a continued answer already says (empty unless the request continues)."""
        return self.messages[-1].content if self.continues and self.messages else ""

    def check(self) -> None:
        if not self.messages or not any(m.content.strip() for m in self.messages):
            raise ValidationError("Write something for the model to answer.", field="input")
        for message in self.messages:
            if message.role not in ROLES:
                raise ValidationError(
                    f"Unknown chat role {message.role!r}: use {', '.join(ROLES)}.", field="input"
                )
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise ValidationError(
                f"Max new tokens {self.max_new_tokens} must be between 1 and {MAX_NEW_TOKENS}.",
                field="max_new_tokens",
            )
        if not 0 <= self.temperature <= 2:
            raise ValidationError(
                f"Temperature {self.temperature} must be between 0 and 2.", field="temperature"
            )
        if not 0 < self.top_p <= 1:
            raise ValidationError(f"Top-p {self.top_p} must be above 0, at most 1.", field="top_p")
        if not 1 <= self.repetition_penalty <= 2:
            raise ValidationError(
                f"Repetition penalty {self.repetition_penalty} must be between 1 and 2.",
                field="repetition_penalty",
            )
        if self.continues and (
            self.messages[-1].role != "assistant" or not self.answer_so_far.strip()
        ):
            raise ValidationError("Only an answer that has begun can be continued.", field="input")
        check_seed(self.seed)


MAX_EMBEDDING_TEXTS = 20_000  # one request: a long document's passages
MAX_EMBEDDING_CHARS = 20_000  # one text; the model reads its first few hundred tokens anyway


@dataclass(frozen=True)
class EmbeddingRequest:
    """Texts to turn into vectors (one per text, length 1) with an embedding model."""

    kind: ClassVar[str] = "embedding"

    model: str
    texts: tuple[str, ...]
    title: str = ""

    @property
    def summary(self) -> str:
        return self.title or f"Embedding {len(self.texts):,} text(s)"

    def check(self) -> None:
        if not self.texts:
            raise ValidationError("Give at least one text to embed.", field="input")
        if len(self.texts) > MAX_EMBEDDING_TEXTS:
            raise ValidationError(
                f"{len(self.texts):,} texts is too many for one request: "
                f"send at most {MAX_EMBEDDING_TEXTS:,}.",
                field="input",
            )
        for text in self.texts:
            if not isinstance(text, str) or not text.strip():
                raise ValidationError("Every text to embed needs some words.", field="input")
            if len(text) > MAX_EMBEDDING_CHARS:
                raise ValidationError(
                    f"A text to embed has {len(text):,} characters; the most is "
                    f"{MAX_EMBEDDING_CHARS:,}.",
                    field="input",
                )


@dataclass(frozen=True)
class DocumentPrompt:
    """One call of the model in a document job: the messages (the document's text quoted in
    them), the pages or paragraphs they cover, and the answer's length."""

    messages: tuple[ChatMessage, ...]
    units: tuple[int, ...]  # pages or paragraphs the prompt quotes
    passages: tuple[int, ...]  # positions of the passages it quotes
    max_new_tokens: int


@dataclass(frozen=True)
class DocumentOutcome:
    """What the document lane hands a task at the end: every answer, in prompt order."""

    notes: tuple[str, ...]  # the answers to the map prompts
    final: str | None  # the answer to the last reduce prompt, if the task reduces
    visited: tuple[int, ...]  # indices of the map prompts the model answered
    tokens: int  # tokens generated in all
    seconds: float


class DocumentTask(Protocol):
    """A document job's work, as plain prompts: the documents service builds tasks
    (summary, extraction, question, comparison); the engine's document lane runs them.
    Map prompts are answered many at a time; then, for a task that reduces, the answers
    are combined (in as many rounds as the model's context needs) into one final answer."""

    name: str  # summary | extraction | question | comparison
    unit: str  # page | paragraph
    unit_count: int  # pages or paragraphs in the document(s)
    reduce_tokens: int  # the longest answer of a reduce prompt; 0: the task does not reduce

    def map_prompts(self) -> tuple[DocumentPrompt, ...]: ...

    def map_note(self, index: int, answer: str) -> str:
        """A map answer as a note for the reduce prompts (labelled with its pages, say)."""

    def reduce_messages(self, notes: list[str], final: bool) -> tuple[ChatMessage, ...]: ...

    def finish(self, outcome: DocumentOutcome) -> Any: ...


@dataclass(frozen=True)
class DocumentRequest:
    kind: ClassVar[str] = "document"

    model: str
    task: Any = field(compare=False)  # a DocumentTask
    title: str = ""
    temperature: float = 0.0
    seed: int = 0

    @property
    def summary(self) -> str:
        return self.title or f"Document {self.task.name}"

    def check(self) -> None:
        prompts = self.task.map_prompts()
        if not prompts:
            raise ValidationError("There is nothing in the document to read.", field="document")
        for prompt in prompts:
            if not 1 <= prompt.max_new_tokens <= MAX_NEW_TOKENS:
                raise ValidationError(
                    f"An answer of {prompt.max_new_tokens} tokens is not allowed.",
                    field="length",
                )
        if not 0 <= self.temperature <= 2:
            raise ValidationError(
                f"Temperature {self.temperature} must be between 0 and 2.", field="temperature"
            )
        check_seed(self.seed)

    @property
    def sampling_temperature(self) -> float:
        return 0.0 if self.temperature < GREEDY_BELOW_TEMPERATURE else self.temperature


@dataclass(frozen=True)
class TrainingExample:
    """One example as the lane learns it: the prompt turns and the answer to learn."""

    prompt: tuple[ChatMessage, ...]
    answer: str
    source: str = ""  # where it came from, for messages: "texts.csv, row 4"


@dataclass(frozen=True)
class TrainingRequest:
    """Tune a LoRA adapter for `model` on `train`, evaluated on `held_back`. The run writes
    under `folder`: `checkpoint/` while it runs (a new request for the same folder resumes
    from it) and `adapter/` when it is done."""

    kind: ClassVar[str] = "training"

    model: str
    train: tuple[TrainingExample, ...] = field(repr=False)
    held_back: tuple[TrainingExample, ...] = field(repr=False)
    settings: Any  # webapp.tuning.presets.TuningSettings
    folder: str
    title: str = ""
    samples: int = 3  # held-back prompts answered by the base and the tuned model
    sample_tokens: int = 96

    @property
    def summary(self) -> str:
        return self.title or f"Tuning a voice on {len(self.train):,} examples"

    def check(self) -> None:
        if not self.train:
            raise ValidationError("There are no examples to train on.", field="examples")
        if not self.held_back:
            raise ValidationError(
                "Some examples must be held back to evaluate the voice.", field="examples"
            )
        self.settings.check()

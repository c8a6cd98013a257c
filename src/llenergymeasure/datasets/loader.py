"""Load prompts from the built-in set, a JSONL file, synthetic text, a Hugging Face hub dataset
(AIEnergyScore's, ShareGPT conversations, or any by name) or a ShareGPT file, selected by seed.

Selection is deterministic: the same source, ``n`` and ``seed`` always give the same prompts in
the same order, and no function here touches the global ``random`` state.
"""

from __future__ import annotations

import difflib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llenergymeasure.config.common import PROMPT_SOURCES
from llenergymeasure.datasets import sharegpt
from llenergymeasure.datasets.hub import HubSplit, load_hub_split
from llenergymeasure.datasets.selection import Selection, select
from llenergymeasure.errors import DatasetError
from llenergymeasure.results.models import DatasetInfo

if TYPE_CHECKING:
    from llenergymeasure.config.models import DatasetConfig

BUILTIN_SOURCE = "builtin"
SYNTHETIC_SOURCE = "synthetic"
SYNTHETIC_CATEGORY = "synthetic"

_BUILTIN_LABEL = "built-in prompt set (llenergymeasure/datasets/data/builtin.jsonl)"
_ACCEPTED = (
    ", ".join(f"'{name}'" for name in PROMPT_SOURCES) + " or the path of an existing JSONL file"
)

# Common English words for synthetic prompts: real words tokenize like real text (roughly one to
# two tokens each), so synthetic prompts exercise the tokenizer and embeddings realistically.
_WORD_TEXT = """
    the of and to in is that it was for on are as with his they at be this from have or by one
    had not but what all were when we there can an your which their said if do will each about
    how up out them then she many some so these would other into has more her two like him see
    time could no make than first been its who now people my made over did down only way find
    use may water long little very after words called just where most know get through back
    much go good new write our used me man too any day same right look think also around
    another came come work three word must because does part even place well such here take
    why things help put years different away again off went old number great tell men say small
    every found still between name should home big give air line set own under read last never
    us left end along while might next sound below saw something thought both few those always
    looked show large often together asked house world going want school important until form
    food keep children feet land side without boy once animals life enough took sometimes four
    head above kind began almost live page got earth need far hand high year mother light parts
    country father let night following picture being study second eyes soon times story boys
    since white days ever paper hard near sentence better best across during today others sure
    means knew try told young miles sun ways thing whole hear example heard several change
    answer room sea against top turned learn point city play toward five using himself usually
    money seen car morning river garden window table energy measure power model question reason
"""
_WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())


@dataclass(frozen=True)
class Prompt:
    """One prompt to send to the model.

    Exactly one of ``text`` and ``token_ids`` is set. Text prompts go through the backend's
    chat template and tokenizer as usual; synthetic prompts carry ``token_ids`` and are fed to the
    model as tokens, bypassing any chat template, so that their length is exact.

    Attributes:
        text: The prompt text, or None for a token prompt.
        token_ids: The prompt as token ids, or None for a text prompt.
        index: Position of this prompt in the list returned by :func:`load_prompts` (0-based);
            unique within one run even when prompts repeat.
        category: The kind of prompt (for example ``"code"``), when the source says.
        output_tokens: The length in tokens of the prompt's reference answer (ShareGPT's reply
            turn, a hub dataset's ``output_column``), counted by the model's tokenizer without
            special tokens; None for sources without reference answers.
    """

    text: str | None
    token_ids: tuple[int, ...] | None
    index: int
    category: str | None = None
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.token_ids is None):
            raise ValueError("a Prompt needs exactly one of text and token_ids")


@dataclass(frozen=True)
class PromptSet:
    """The prompts of a run and a description of where they came from (for the result)."""

    prompts: list[Prompt]
    info: DatasetInfo


class TokenCodec(Protocol):
    """Turns text into token ids; all that synthetic prompts need from a tokenizer."""

    def encode(self, text: str) -> list[int]:
        """Return the token ids of ``text``, without special tokens such as BOS."""
        ...


class HFTokenizerCodec:
    """Adapts a Hugging Face tokenizer to :class:`TokenCodec`.

    The tokenizer is duck-typed (anything with ``encode(text, add_special_tokens=...)``), so this
    module never imports ``transformers``. Special tokens are left out: the backend adds them,
    if the model needs them, when it builds the input.

    Args:
        tokenizer: A ``transformers`` tokenizer (``PreTrainedTokenizerBase``).
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        """Return the token ids of ``text`` without special tokens."""
        return [int(i) for i in self._tokenizer.encode(text, add_special_tokens=False)]


@dataclass(frozen=True)
class Record:
    """One usable row of a text source: the prompt, and its reference answer where it has one."""

    text: str
    category: str | None = None
    answer: str | None = None


@dataclass(frozen=True)
class SourceRows:
    """Every usable row of a text source, in source order, and its description."""

    records: list[Record]
    info: DatasetInfo


def load_prompts(
    config: DatasetConfig, n: int, seed: int, codec: TokenCodec | None = None
) -> list[Prompt]:
    """The prompts of :func:`load_prompt_set` (same arguments, same errors)."""
    return load_prompt_set(config, n, seed, codec).prompts


def load_prompt_set(
    config: DatasetConfig, n: int, seed: int, codec: TokenCodec | None = None
) -> PromptSet:
    """Load ``n`` prompts from the configured source, chosen deterministically by ``seed``.

    For text sources, ``n`` prompts are drawn by a ``random.Random(seed)`` shuffle. If ``n`` is
    at most the number available, every prompt returned is distinct (a seeded sample without
    replacement). If ``n`` is larger, the source is used in repeated passes, each pass a fresh
    seeded shuffle of every prompt, so each prompt appears either ``n // available`` or
    ``n // available + 1`` times and never twice in a row (which would flatter a backend with
    prefix caching). ShareGPT conversations outside vLLM's length limits are passed over
    (:mod:`llenergymeasure.datasets.sharegpt`).

    For ``synthetic``, each prompt is seeded pseudo-random English-like text cut to exactly
    ``config.synthetic_input_tokens`` token ids by ``codec``. Prompt ``i`` depends only on
    ``seed`` and ``i``, and no two prompts share their text.

    Args:
        config: The dataset section of the experiment config.
        n: How many prompts to return (0 gives an empty list).
        seed: Seed for selection and synthetic text; the same seed gives the same prompts.
        codec: The model's tokenizer as a :class:`TokenCodec`; required for ``synthetic`` and
            for sources with reference answers (ShareGPT, a hub dataset with
            ``output_column``), whose lengths it counts.

    Returns:
        ``n`` prompts with ``index`` 0 to ``n - 1``, and the source's description.

    Raises:
        DatasetError: The source is unknown, missing, unreachable or malformed; it has no
            reference answers for ``output_lengths: from_dataset``; or a codec it needs was
            not given.
        DependencyError: A hub dataset was asked for without the ``datasets`` library.
        ValueError: ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"n must be at least 0, got {n}")
    check_output_lengths(config)
    if config.source == SYNTHETIC_SOURCE:
        if codec is None:
            raise _needs_codec(config, f"prompts of exactly {config.synthetic_input_tokens} tokens")
        prompts = _synthetic_prompts(n, seed, config.synthetic_input_tokens, codec)
        return PromptSet(prompts, DatasetInfo(source=SYNTHETIC_SOURCE, name=SYNTHETIC_SOURCE))
    rows = read_source(config)
    if not config.has_reference_answers:
        return _selected(rows, select(len(rows.records), n, seed), None)
    if codec is None:
        raise _needs_codec(config, "the token lengths of its reference answers")
    lengths = _AnswerLengths(rows.records, codec)
    keep = lengths.within_vllm_limits if config.source == "sharegpt" else None
    selection = select(len(rows.records), n, seed, keep)
    if n and not selection.indices:
        raise DatasetError(
            f"None of the {len(rows.records)} conversations of {rows.info.name} is within vLLM's "
            f"ShareGPT length limits ({sharegpt.MIN_TOKENS} to {sharegpt.MAX_PROMPT_TOKENS} "
            f"prompt tokens, at least {sharegpt.MIN_TOKENS} answer tokens, at most "
            f"{sharegpt.MAX_TOTAL_TOKENS} together)."
        )
    return _selected(rows, selection, lengths.answer_tokens)


def validate_source(config: DatasetConfig) -> None:
    """Check that the configured prompt source exists and parses, without loading a model.

    A JSONL or ShareGPT file is read and every entry checked, and a hub dataset is loaded
    (fetched into the local Hugging Face cache if it is not there), so bad input fails before
    anything expensive starts. ``synthetic`` needs nothing beyond the config's own validation.

    Args:
        config: The dataset section of the experiment config.

    Raises:
        DatasetError: The source is unknown, missing, unreachable or malformed, or it has no
            reference answers for ``output_lengths: from_dataset``.
        DependencyError: A hub dataset was asked for without the ``datasets`` library.
    """
    check_output_lengths(config)
    if config.source != SYNTHETIC_SOURCE:
        read_source(config)


def check_output_lengths(config: DatasetConfig) -> None:
    """Raise when ``output_lengths: from_dataset`` meets a source without reference answers.

    Raises:
        DatasetError: it does.
    """
    if config.output_lengths == "from_dataset" and not config.has_reference_answers:
        raise DatasetError(
            "dataset.output_lengths: from_dataset uses each prompt's reference answer, and "
            f"source '{config.source}' has none; use source 'sharegpt', or a hub dataset with "
            "dataset.output_column."
        )


def read_source(config: DatasetConfig) -> SourceRows:
    """Every usable row of a text source (all but ``synthetic``), with its description.

    Raises:
        DatasetError: as :func:`validate_source`.
        DependencyError: a hub dataset without the ``datasets`` library.
    """
    if config.source == BUILTIN_SOURCE:
        records = _load_records(BUILTIN_SOURCE)
        return SourceRows(records, _counted(DatasetInfo(source="builtin", name="builtin"), records))
    if config.source == "sharegpt":
        return _sharegpt_rows(config)
    if config.hub_dataset is not None:
        return _hub_rows(config)
    records = _load_records(config.source)
    path = str(Path(config.source).expanduser())
    return SourceRows(records, _counted(DatasetInfo(source="jsonl", name=path), records))


def _selected(
    rows: SourceRows, selection: Selection, answer_tokens: Callable[[int], int] | None
) -> PromptSet:
    prompts = [
        Prompt(
            text=rows.records[k].text,
            token_ids=None,
            index=i,
            category=rows.records[k].category,
            output_tokens=answer_tokens(k) if answer_tokens is not None else None,
        )
        for i, k in enumerate(selection.indices)
    ]
    return PromptSet(prompts, rows.info.model_copy(update={"n_pruned": selection.n_pruned}))


class _AnswerLengths:
    """Token lengths of prompts and reference answers, each counted once, when first asked."""

    def __init__(self, records: Sequence[Record], codec: TokenCodec) -> None:
        self._records = records
        self._codec = codec
        self._prompt: dict[int, int] = {}
        self._answer: dict[int, int] = {}

    def answer_tokens(self, index: int) -> int:
        """Tokens of row ``index``'s reference answer."""
        if index not in self._answer:
            self._answer[index] = len(self._codec.encode(self._records[index].answer or ""))
        return self._answer[index]

    def within_vllm_limits(self, index: int) -> bool:
        """Whether row ``index`` passes vLLM's ShareGPT length rule."""
        if index not in self._prompt:
            self._prompt[index] = len(self._codec.encode(self._records[index].text))
        return sharegpt.within_limits(self._prompt[index], self.answer_tokens(index))


def _needs_codec(config: DatasetConfig, purpose: str) -> DatasetError:
    return DatasetError(
        f"Dataset source '{config.source}' needs the model's tokenizer for {purpose}, and none "
        "was given."
    )


def _counted(
    info: DatasetInfo, records: Sequence[Record], n_rows: int | None = None
) -> DatasetInfo:
    rows = len(records) if n_rows is None else n_rows
    return info.model_copy(update={"n_rows": rows, "n_usable": len(records)})


def _sharegpt_rows(config: DatasetConfig) -> SourceRows:
    if config.path is not None:
        path = Path(config.path).expanduser()
        entries = sharegpt.read_file(path)
        info = DatasetInfo(source="sharegpt", name=str(path))
    else:
        split = _load_split(config)
        entries = [
            {"conversations": turns}
            for turns in split.column(config.prompt_column, "dataset.column")
        ]
        info = _hub_info(config, split)
    records = [
        Record(text=e.prompt, answer=e.answer) for e in sharegpt.exchanges(entries, info.name)
    ]
    if not records:
        raise DatasetError(f"{info.name} holds no conversation with at least two turns.")
    return SourceRows(records, _counted(info, records, len(entries)))


def _hub_rows(config: DatasetConfig) -> SourceRows:
    split = _load_split(config)
    prompts = split.column(config.prompt_column, "dataset.column")
    answers: list[Any] = (
        split.column(config.output_column, "dataset.output_column")
        if config.output_column is not None
        else [None] * len(prompts)
    )
    records = [
        Record(text=prompt, answer=answer)
        for number, (prompt, answer) in enumerate(zip(prompts, answers, strict=True))
        if _text_cell(prompt, "dataset.column", number)
        and (config.output_column is None or _text_cell(answer, "dataset.output_column", number))
    ]
    info = _hub_info(config, split)
    if not records:
        raise DatasetError(f"The hub dataset '{info.name}' has no row with a non-empty prompt.")
    return SourceRows(records, _counted(info, records, split.n_rows))


def _text_cell(value: Any, field: str, row: int) -> bool:
    """Whether a hub cell holds usable text (None and blank text are passed over).

    Raises:
        DatasetError: it holds something other than text.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return False
    if not isinstance(value, str):
        raise DatasetError(
            f"{field}: row {row} holds {_json_type(value)}, not text; name a column of strings."
        )
    return True


def _load_split(config: DatasetConfig) -> HubSplit:
    name, revision = config.hub_dataset, config.hub_revision
    if name is None or revision is None:  # the config's validators guarantee both
        raise DatasetError(f"Dataset source '{config.source}' names no hub dataset and revision.")
    return load_hub_split(name, revision, config.split)


def _hub_info(config: DatasetConfig, split: HubSplit) -> DatasetInfo:
    return DatasetInfo(
        source=config.source,
        name=config.hub_dataset or "",
        split=config.split,
        column=config.prompt_column,
        output_column=config.output_column,
        revision=config.hub_revision,
        resolved_revision=split.resolved_revision,
    )


def _load_records(source: str) -> list[Record]:
    if source == BUILTIN_SOURCE:
        resource = resources.files("llenergymeasure.datasets") / "data" / "builtin.jsonl"
        data = resource.read_bytes()
        return _parse_jsonl(data, _BUILTIN_LABEL)
    path = Path(source).expanduser()
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise DatasetError(_unknown_source_message(source, path)) from None
    except IsADirectoryError:
        message = f"Dataset source {path} is a directory; expected a JSONL file."
        raise DatasetError(message) from None
    except (OSError, ValueError) as exc:  # permissions, over-long names, NUL bytes
        reason = getattr(exc, "strerror", None) or exc
        raise DatasetError(f"Cannot read dataset file {path}: {reason}.") from None
    return _parse_jsonl(data, str(path))


def _unknown_source_message(source: str, path: Path) -> str:
    message = (
        f"Dataset source '{source}' was not found: there is no file at {path.absolute()}. "
        f"Use {_ACCEPTED}."
    )
    close = difflib.get_close_matches(source, PROMPT_SOURCES, n=1)
    if close:
        message += f" Did you mean '{close[0]}'?"
    return message


def _parse_jsonl(data: bytes, label: str) -> list[Record]:
    records: list[Record] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError(
                f"{label}, line {number}: not valid UTF-8 text; save the file as UTF-8."
            ) from None
        if number == 1:
            line = line.removeprefix("\ufeff")  # tolerate a byte-order mark from Windows editors
        if line.strip():
            records.append(_parse_line(line, label, number))
    if not records:
        raise DatasetError(f"{label} contains no prompts: the file is empty or only blank lines.")
    return records


def _parse_line(line: str, label: str, number: int) -> Record:
    where = f"{label}, line {number}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
    if not isinstance(obj, dict):
        raise DatasetError(
            f'{where}: expected a JSON object like {{"prompt": "..."}}, got {_json_type(obj)}.'
        )
    if "prompt" not in obj:
        raise DatasetError(f'{where}: the object has no "prompt" key.')
    text = obj["prompt"]
    if not isinstance(text, str):
        raise DatasetError(f'{where}: "prompt" must be a string, got {_json_type(text)}.')
    if not text.strip():
        raise DatasetError(f'{where}: "prompt" is empty.')
    category = obj.get("category")
    if category is not None and not isinstance(category, str):
        raise DatasetError(f'{where}: "category" must be a string, got {_json_type(category)}.')
    return Record(text=text, category=category)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _synthetic_prompts(n: int, seed: int, length: int, codec: TokenCodec) -> list[Prompt]:
    return [
        Prompt(
            text=None,
            token_ids=_synthetic_ids(random.Random(f"{seed}:{i}"), length, codec),
            index=i,
            category=SYNTHETIC_CATEGORY,
        )
        for i in range(n)
    ]


def _synthetic_ids(rng: random.Random, length: int, codec: TokenCodec) -> tuple[int, ...]:
    """Exactly ``length`` ids: the start of enough seeded text, grown until it is long enough."""
    # Most tokenizers give at least one token per word, so start there and double if short.
    sentences = _sentences(rng, length + 16)
    for _ in range(10):
        ids = codec.encode(" ".join(sentences))
        if len(ids) >= length:
            return tuple(ids[:length])
        sentences += _sentences(rng, max(len(" ".join(sentences).split()), 16))
    raise DatasetError(
        f"The tokenizer produced only {len(ids)} tokens from {len(' '.join(sentences).split())} "
        f"words of text, too few for synthetic prompts of {length} tokens."
    )


def _sentences(rng: random.Random, words: int) -> list[str]:
    """Seeded sentences of 6 to 16 common words with occasional commas, about ``words`` long."""
    out: list[str] = []
    total = 0
    while total < words:
        size = rng.randint(6, 16)
        picked = [rng.choice(_WORDS) for _ in range(size)]
        for k in range(1, size - 1):
            if rng.random() < 0.08:
                picked[k] += ","
        out.append(" ".join(picked).capitalize() + ".")
        total += size
    return out

"""Load prompts from the built-in set, a JSONL file or synthetic text, selected by seed.

Selection is deterministic: the same source, ``n`` and ``seed`` always give the same prompts in
the same order, and no function here touches the global ``random`` state.
"""

from __future__ import annotations

import difflib
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llenergymeasure.errors import DatasetError

if TYPE_CHECKING:
    from llenergymeasure.config.models import DatasetConfig

BUILTIN_SOURCE = "builtin"
SYNTHETIC_SOURCE = "synthetic"
SYNTHETIC_CATEGORY = "synthetic"

_BUILTIN_LABEL = "built-in prompt set (llenergymeasure/datasets/data/builtin.jsonl)"
_ACCEPTED = f"'{BUILTIN_SOURCE}', '{SYNTHETIC_SOURCE}' or the path of an existing JSONL file"

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
    """

    text: str | None
    token_ids: tuple[int, ...] | None
    index: int
    category: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.token_ids is None):
            raise ValueError("a Prompt needs exactly one of text and token_ids")


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
class _Record:
    text: str
    category: str | None


def load_prompts(
    config: DatasetConfig, n: int, seed: int, codec: TokenCodec | None = None
) -> list[Prompt]:
    """Load ``n`` prompts from the configured source, chosen deterministically by ``seed``.

    For the built-in set and JSONL files, ``n`` prompts are drawn from the source by a
    ``random.Random(seed)`` shuffle. If ``n`` is at most the number available, every prompt
    returned is distinct (a seeded sample without replacement). If ``n`` is larger, the source is
    used in repeated passes, each pass a fresh seeded shuffle of every prompt, so each prompt
    appears either ``n // available`` or ``n // available + 1`` times and never twice in a row
    (which would flatter a backend with prefix caching).

    For ``synthetic``, each prompt is seeded pseudo-random English-like text cut to exactly
    ``config.synthetic_input_tokens`` token ids by ``codec``. Prompt ``i`` depends only on
    ``seed`` and ``i``, and no two prompts share their text.

    Args:
        config: The dataset section of the experiment config.
        n: How many prompts to return (0 gives an empty list).
        seed: Seed for selection and synthetic text; the same seed gives the same prompts.
        codec: The model's tokenizer as a :class:`TokenCodec`; required for ``synthetic``.

    Returns:
        ``n`` prompts with ``index`` 0 to ``n - 1``.

    Raises:
        DatasetError: The source is unknown, missing or malformed, or ``synthetic`` was asked
            for without a codec.
        ValueError: ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"n must be at least 0, got {n}")
    if config.source == SYNTHETIC_SOURCE:
        if codec is None:
            raise DatasetError(
                f"Dataset source '{SYNTHETIC_SOURCE}' needs the model's tokenizer to build prompts "
                f"of exactly {config.synthetic_input_tokens} tokens, and none was given."
            )
        return _synthetic_prompts(n, seed, config.synthetic_input_tokens, codec)
    records = _load_records(config.source)
    order = _seeded_order(len(records), n, seed)
    return [
        Prompt(text=records[k].text, token_ids=None, index=i, category=records[k].category)
        for i, k in enumerate(order)
    ]


def validate_source(config: DatasetConfig) -> None:
    """Check that the configured prompt source exists and parses, without loading a model.

    A JSONL file is read and every line checked, so bad input fails before anything expensive
    starts. ``synthetic`` needs nothing beyond the config's own validation.

    Args:
        config: The dataset section of the experiment config.

    Raises:
        DatasetError: The source is unknown, missing or malformed.
    """
    if config.source != SYNTHETIC_SOURCE:
        _load_records(config.source)


def _load_records(source: str) -> list[_Record]:
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
    close = difflib.get_close_matches(source, [BUILTIN_SOURCE, SYNTHETIC_SOURCE], n=1)
    if close:
        message += f" Did you mean '{close[0]}'?"
    return message


def _parse_jsonl(data: bytes, label: str) -> list[_Record]:
    records: list[_Record] = []
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


def _parse_line(line: str, label: str, number: int) -> _Record:
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
    return _Record(text=text, category=category)


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


def _seeded_order(available: int, n: int, seed: int) -> list[int]:
    """Indices into the source: seeded shuffled passes over all of it, cut to ``n``."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < n:
        batch = list(range(available))
        rng.shuffle(batch)
        if order and available > 1 and batch[0] == order[-1]:
            batch[0], batch[1] = batch[1], batch[0]
        order.extend(batch)
    return order[:n]


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

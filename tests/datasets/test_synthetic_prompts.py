"""Synthetic prompts: exact token length with real tokenizers, determinism, and the codec seam."""

from __future__ import annotations

from typing import Any

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets import HFTokenizerCodec, TokenCodec, load_prompts
from llenergymeasure.datasets.loader import _WORDS
from llenergymeasure.errors import DatasetError


class _TokenizersCodec:
    """A ``tokenizers.Tokenizer`` as a TokenCodec."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    """A small byte-level BPE trained in milliseconds: splits words into several pieces."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["[UNK]", "<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([" ".join(_WORDS)] * 3, trainer=trainer)
    return tokenizer


@pytest.fixture(scope="module")
def word_level() -> Tokenizer:
    """One token per word or punctuation mark: the fewest tokens per word of text."""
    vocab = {"[UNK]": 0, ",": 1, ".": 2}
    for word in _WORDS:
        vocab.setdefault(word, len(vocab))
        vocab.setdefault(word.capitalize(), len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def _synthetic(tokens: int) -> DatasetConfig:
    return DatasetConfig(source="synthetic", synthetic_input_tokens=tokens)


@pytest.mark.parametrize("tokens", [1, 7, 128, 1000])
@pytest.mark.parametrize("which", ["bpe", "word_level"])
def test_exact_token_length(tokens: int, which: str, request: pytest.FixtureRequest) -> None:
    codec = _TokenizersCodec(request.getfixturevalue(which))
    prompts = load_prompts(_synthetic(tokens), 5, seed=0, codec=codec)
    assert [p.index for p in prompts] == list(range(5))
    for prompt in prompts:
        assert prompt.text is None
        assert prompt.category == "synthetic"
        assert prompt.token_ids is not None
        assert len(prompt.token_ids) == tokens
        assert 0 not in prompt.token_ids  # no [UNK]: the text is made of known words


def test_synthetic_text_is_english_like(word_level: Tokenizer) -> None:
    prompt = load_prompts(_synthetic(60), 1, seed=0, codec=_TokenizersCodec(word_level))[0]
    assert prompt.token_ids is not None
    text = word_level.decode(list(prompt.token_ids))
    assert text.split()[0][0].isupper()
    assert "." in text


def test_synthetic_is_deterministic_and_seed_sensitive(bpe: Tokenizer) -> None:
    codec = _TokenizersCodec(bpe)
    first = load_prompts(_synthetic(64), 4, seed=11, codec=codec)
    assert first == load_prompts(_synthetic(64), 4, seed=11, codec=codec)
    assert first[:2] == load_prompts(_synthetic(64), 2, seed=11, codec=codec)
    other = load_prompts(_synthetic(64), 4, seed=12, codec=codec)
    assert [p.token_ids for p in first] != [p.token_ids for p in other]
    assert len({p.token_ids for p in first}) == 4  # distinct prompts defeat prefix caching


def test_synthetic_without_codec_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match=r"needs the model's tokenizer .* 32 tokens"):
        load_prompts(_synthetic(32), 1, seed=0)


def test_codec_that_yields_too_few_tokens_is_reported() -> None:
    class _Stingy:
        def encode(self, text: str) -> list[int]:
            return [1, 2, 3]

    with pytest.raises(DatasetError, match=r"only 3 tokens .* synthetic prompts of 10 tokens"):
        load_prompts(_synthetic(10), 1, seed=0, codec=_Stingy())


def test_hf_adapter_drops_special_tokens_and_satisfies_protocol(bpe: Tokenizer) -> None:
    transformers = pytest.importorskip("transformers")
    bpe_with_bos = Tokenizer.from_str(bpe.to_str())
    bpe_with_bos.post_processor = _bos_post_processor(bpe_with_bos)
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe_with_bos, bos_token="<s>")
    assert hf.encode("the river")[0] == hf.bos_token_id  # the raw tokenizer adds BOS

    codec: TokenCodec = HFTokenizerCodec(hf)
    assert hf.bos_token_id not in codec.encode("the river")
    prompt = load_prompts(_synthetic(50), 1, seed=0, codec=codec)[0]
    assert prompt.token_ids is not None
    assert len(prompt.token_ids) == 50
    assert hf.bos_token_id not in prompt.token_ids


def _bos_post_processor(tokenizer: Tokenizer) -> Any:
    from tokenizers import processors

    bos = tokenizer.token_to_id("<s>")
    return processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])


def test_text_grows_until_a_compressing_codec_gives_enough_tokens() -> None:
    class _FourWordsPerToken:
        def __init__(self) -> None:
            self.calls = 0

        def encode(self, text: str) -> list[int]:
            self.calls += 1
            return list(range(len(text.split()) // 4))

    codec = _FourWordsPerToken()
    prompt = load_prompts(_synthetic(200), 1, seed=0, codec=codec)[0]
    assert prompt.token_ids == tuple(range(200))
    assert codec.calls > 1


@pytest.mark.slow
def test_exact_length_with_the_embedded_models_tokenizer(embedded_folder: Any) -> None:
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(embedded_folder)
    codec = HFTokenizerCodec(tokenizer)
    for tokens in (1, 128, 2048):
        prompts = load_prompts(_synthetic(tokens), 3, seed=0, codec=codec)
        assert all(p.token_ids is not None and len(p.token_ids) == tokens for p in prompts)
    text = tokenizer.decode(list(prompts[0].token_ids or ()))
    assert text.split()[0][0].isupper()

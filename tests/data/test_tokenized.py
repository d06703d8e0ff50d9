"""Tokenized text: ids, segments and labels, the on-disk cache, per-batch padding.

The real-data test reads ``TAPWEIGHT_DATA_DIR`` and is skipped when it is unset.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tapweight.data.text_tasks import TextExample, load_text_task
from tapweight.data.tokenized import TokenizedText, text_collate, tokenize_examples, tokenize_texts


@pytest.fixture(scope="module")
def tokenizer():
    from tapweight.models.text import load_tokenizer

    return load_tokenizer("minilm")


def _cached_files(cache: Path) -> list[Path]:
    return sorted((cache / "processed" / "text").glob("*.pt"))


@pytest.mark.dataset
def test_tokenize_rte_and_cache(
    need, data_dir: Path, tokenizer, _isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("glue_rte")
    examples = load_text_task("glue_rte", data_dir).train[:64]
    first = tokenize_examples(examples, tokenizer, max_length=48)
    assert isinstance(first, TokenizedText) and len(first) == 64 and not first.from_cache
    lengths = []
    for i in range(len(first)):
        item = first[i]
        assert item["input_ids"][0].item() == tokenizer.cls_token_id
        assert item["input_ids"][-1].item() == tokenizer.sep_token_id
        assert 1 in item["token_type_ids"].tolist()  # the hypothesis is segment 1
        assert item["attention_mask"].tolist() == [1] * len(item["input_ids"])
        assert item["labels"].dtype == torch.long
        lengths.append(len(item["input_ids"]))
    assert max(lengths) == 48 and min(lengths) < 48  # truncated, never padded here
    assert first[0]["labels"].item() == examples[0].label

    files = _cached_files(_isolated_cache)
    assert files == [first.cache_path]

    def refuse(*args, **kwargs):
        raise AssertionError("tokenizer called although the cache should be used")

    monkeypatch.setattr(type(tokenizer), "__call__", refuse)
    second = tokenize_examples(examples, tokenizer, max_length=48)
    assert second.from_cache and second.cache_path == first.cache_path
    for i in (0, 17, 63):
        for key, value in first[i].items():
            assert torch.equal(value, second[i][key])
    # Another max_length is another cache entry, so it must tokenize (and here it cannot).
    with pytest.raises(AssertionError, match="tokenizer called"):
        tokenize_examples(examples, tokenizer, max_length=32)


def test_regression_labels_and_unlabeled_texts(tokenizer, _isolated_cache: Path) -> None:
    examples = [
        TextExample("A plane is taking off.", "An air plane is taking off.", 5.0),
        TextExample("A man is playing a flute.", "A man plays a flute.", 3.8),
    ]
    data = tokenize_examples(examples, tokenizer)
    assert data[1]["labels"].dtype == torch.float32
    assert data[1]["labels"].item() == pytest.approx(3.8)

    texts = ["Unlabeled domain sentence one .", "And a second , longer unlabeled sentence ."]
    plain = tokenize_texts(texts, tokenizer, max_length=16)
    assert len(plain) == 2 and "labels" not in plain[0]
    assert set(plain[0]["token_type_ids"].tolist()) == {0}
    expected = tokenizer(texts[0])["input_ids"]
    assert plain[0]["input_ids"].tolist() == expected
    assert len(_cached_files(_isolated_cache)) == 2
    assert tokenize_texts(texts, tokenizer, max_length=16).from_cache
    # Different content, different cache file.
    assert not tokenize_texts(texts[:1], tokenizer, max_length=16).from_cache


def test_mixed_single_and_pair_examples(tokenizer) -> None:
    examples = [TextExample("single text", None, 0), TextExample("first", "second", 1)]
    data = tokenize_examples(examples, tokenizer)
    assert set(data[0]["token_type_ids"].tolist()) == {0}
    assert 1 in data[1]["token_type_ids"].tolist()
    assert [data[i]["labels"].item() for i in range(2)] == [0, 1]


def test_text_collate_pads(tokenizer) -> None:
    examples = [
        TextExample("short", None, 1),
        TextExample("a much longer sentence that needs several more tokens", "pair", 0),
        TextExample("medium length text", None, 2),
    ]
    data = tokenize_examples(examples, tokenizer)
    items = [data[i] for i in range(len(data))]
    lengths = [len(item["input_ids"]) for item in items]
    batch = text_collate(tokenizer)(items)
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["token_type_ids"].shape == batch["input_ids"].shape
    for row, n in enumerate(lengths):
        assert batch["attention_mask"][row, :n].tolist() == [1] * n
        assert batch["attention_mask"][row, n:].tolist() == [0] * (max(lengths) - n)
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert torch.equal(batch["input_ids"][row, :n], items[row]["input_ids"])
    assert batch["labels"].tolist() == [1, 0, 2] and batch["labels"].dtype == torch.long

    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=text_collate(tokenizer))
    batches = list(loader)
    assert [b["input_ids"].shape[0] for b in batches] == [2, 1]

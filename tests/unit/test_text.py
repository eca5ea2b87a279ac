"""Tests of tlcourse.text: pooling, tokenised data, the sentence classifier, embeddings, word vectors, the pager."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tlcourse import text
from tlcourse.freeze import freeze, layer_groups
from tlcourse.models import count_parameters, load_tokenizer
from tlcourse.text import (
    POOLINGS,
    LengthGroupedSampler,
    SentenceClassifier,
    TextCollate,
    TokenizedTexts,
    cls_pool,
    contextual_vector,
    encode_sentences,
    load_sentence_classifier,
    max_pool,
    mean_pool,
    predict_texts,
    sentence_encoder,
    static_neighbours,
    text_error_pager,
    text_loader,
)
from tlcourse.train import fit

TEXTS = ["a gripping , beautifully acted film .", "dull .", "the plot is paper-thin and the acting wooden",
         "one of the best films of the year", "i walked out after twenty minutes", "charming"]
LABELS = [1, 0, 0, 1, 0, 1]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def classifier():
    return load_sentence_classifier("minilm", num_labels=2)[1].eval()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ----------------------------------------------------------------------------------------------------- pooling
def test_mean_pool_ignores_padding():
    h = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    ref = torch.stack([h[i, : int(mask[i].sum())].mean(0) for i in range(3)])
    assert torch.allclose(mean_pool(h, mask), ref, atol=1e-6)
    h2 = h.clone()
    h2[mask == 0] = 1e6
    assert torch.allclose(mean_pool(h2, mask), ref, atol=1e-3)
    assert torch.allclose(mean_pool(h), h.mean(1))  # no mask: plain mean


def test_cls_and_max_pool():
    h = torch.tensor([[[1.0, -1.0], [5.0, 2.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert cls_pool(h, mask).tolist() == [[1.0, -1.0]]
    assert max_pool(h, mask).tolist() == [[5.0, 2.0]]
    assert set(POOLINGS) == {"mean", "avg", "cls", "max", "flat"}  # the package registry (tlcourse.pooling)


def test_pooling_errors():
    with pytest.raises(ValueError, match="does not match"):
        mean_pool(torch.zeros(2, 3, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="unknown pooling"):
        encode_sentences(["x"], pooling="median")


# ---------------------------------------------------------------------------------------------- tokenised data
def test_tokenized_texts(tok):
    ds = TokenizedTexts(TEXTS, LABELS, tok, max_length=6)
    assert len(ds) == len(TEXTS) and max(ds.lengths) == 6
    item = ds[1]
    assert item["input_ids"] == [101, 10634, 1012, 102] and item["labels"] == 0
    assert ds.fingerprint != TokenizedTexts(TEXTS, LABELS, tok, max_length=8).fingerprint
    assert ds.fingerprint == TokenizedTexts(TEXTS, LABELS, tok, max_length=6).fingerprint
    assert "labels" not in TokenizedTexts(TEXTS, None, tok, 8)[0]
    with pytest.raises(ValueError, match="labels"):
        TokenizedTexts(TEXTS, [1], tok, 8)
    with pytest.raises(ValueError, match="max_length"):
        TokenizedTexts(TEXTS, None, tok, 1)


def test_collate_pads_to_longest(tok):
    collate = TextCollate(tok, max_length=32)
    from_items = collate([TokenizedTexts(TEXTS, LABELS, tok, 32)[i] for i in (0, 1)])
    from_pairs = collate([(TEXTS[0], 1), (TEXTS[1], 0)])
    for batch in (from_items, from_pairs):
        assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 9)
        assert batch["attention_mask"][1].tolist() == [1] * 4 + [0] * 5
        assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [1, 0]
    assert torch.equal(from_items["input_ids"], from_pairs["input_ids"])
    assert "labels" not in collate(["just text", "more"])
    assert collate([(" ".join(["word"] * 100), 1)])["input_ids"].shape == (1, 32)
    with pytest.raises(ValueError):
        collate([])


def test_length_grouped_sampler():
    lengths = np.random.default_rng(0).integers(3, 60, size=500)
    sampler = LengthGroupedSampler(lengths, batch_size=16, shuffle=True, seed=0, chunk=10)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(500)) and first != second  # a permutation, new each epoch
    assert first == LengthGroupedSampler(lengths, 16, shuffle=True, seed=0, chunk=10).order(0).tolist()
    padded = sum(lengths[first[i:i + 16]].max() * len(first[i:i + 16]) for i in range(0, 500, 16))
    rand = np.random.default_rng(1).permutation(500)
    padded_random = sum(lengths[rand[i:i + 16]].max() * len(rand[i:i + 16]) for i in range(0, 500, 16))
    assert padded < 0.8 * padded_random  # grouping by length saves padding
    assert list(LengthGroupedSampler([2, 7, 7, 1], 2, shuffle=False)) == [1, 2, 0, 3]
    with pytest.raises(ValueError):
        LengthGroupedSampler([1], batch_size=0)


def test_text_loader(tok):
    loader = text_loader(list(zip(TEXTS, LABELS, strict=True)), tok, max_length=16, batch_size=4, shuffle=True)
    batches = list(loader)
    assert sum(len(b["labels"]) for b in batches) == len(TEXTS) and loader.batch_size == 4
    assert sorted(sum((b["labels"].tolist() for b in batches), [])) == sorted(LABELS)
    plain = text_loader(list(zip(TEXTS, LABELS, strict=True)), tok, max_length=16, batch_size=4, by_length=False)
    assert next(iter(plain))["labels"].tolist() == LABELS[:4]


# ----------------------------------------------------------------------------------------------- classifier
def test_sentence_classifier(tok, classifier):
    assert classifier.bert.pooler is None and classifier.pooling == "mean"
    assert [g.name for g in layer_groups(classifier)] == ["embeddings", *[f"encoder.{i}" for i in range(6)], "head"]
    batch = TextCollate(tok)(TEXTS[:2])
    with torch.no_grad():
        logits = classifier(**batch)
        pooled = classifier.embed(**batch)
    assert logits.shape == (2, 2) and pooled.shape == (2, 384)
    ref = encode_sentences(TEXTS[:2], classifier, tokenizer=tok, cache=False, progress=False)
    assert np.allclose(pooled.numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError):
        SentenceClassifier(copy.deepcopy(classifier.bert), 0)


def test_fit_trains_only_the_head_when_frozen(tok, classifier):
    model = freeze(copy.deepcopy(classifier))
    assert count_parameters(model, trainable_only=True) == 384 * 2 + 2
    before = copy.deepcopy(model.state_dict())
    loader = text_loader(list(zip(TEXTS, LABELS, strict=True)), tok, max_length=16, batch_size=3, shuffle=True)
    history = fit(model, loader, epochs=1, lr=1e-2, progress=False, device="cpu", seed=0)
    assert np.isfinite(history.records[0]["train_loss"])
    after = model.state_dict()
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert torch.equal(before["bert.encoder.layer.0.attention.self.query.weight"],
                       after["bert.encoder.layer.0.attention.self.query.weight"])


# ------------------------------------------------------------------------------------------- sentence vectors
def test_encode_sentences_order_and_cache(cache, monkeypatch):
    X = encode_sentences(TEXTS, max_length=32, progress=False)
    assert X.shape == (len(TEXTS), 384) and X.dtype == np.float32
    one_by_one = np.vstack([encode_sentences([t], max_length=32, cache=False, progress=False) for t in TEXTS])
    assert np.allclose(X, one_by_one, atol=1e-5)  # batching by length and padding do not change the vectors
    assert len(list(cache.glob("text-minilm-mean-*.npz"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(text, "_run_encoder", boom)
    monkeypatch.setattr(text, "_run_sentence_transformer", boom)
    assert np.array_equal(encode_sentences(TEXTS, max_length=32, progress=False), X)
    unit = encode_sentences(TEXTS, max_length=32, normalize=True, progress=False)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    with pytest.raises(AssertionError, match="cache"):
        encode_sentences(TEXTS, max_length=16, progress=False)  # another max_length: another key
    assert encode_sentences([], progress=False).shape == (0, 384)


def test_clear_cache_clears_sentence_embeddings_too(cache):
    """Regression: ``features.clear_cache()`` deleted ``*.npz`` only, while the text cache wrote ``text-*.npy`` into
    the same folder: half the cache survived a clear. Now one cache module owns both (and the old files)."""
    from tlcourse.features import clear_cache

    encode_sentences(TEXTS[:2], max_length=16, progress=False)
    (cache / "text-minilm-mean-0123456789abcdef01234567.npy").write_bytes(b"an old-format file")
    (cache / "lite0-blocks-6-abcdefabcdefabcdefabcdef.npz.tmp").write_bytes(b"an interrupted write")
    assert len(list(cache.iterdir())) == 3
    assert clear_cache() == 3 and list(cache.iterdir()) == []


def test_encode_sentences_needs_tokenizer_for_modules(classifier):
    with pytest.raises(ValueError, match="tokenizer"):
        encode_sentences(["x"], classifier)


def test_predict_texts_keeps_order(tok, classifier):
    preds, probs = predict_texts(classifier, tok, TEXTS, max_length=32, batch_size=4, progress=False)
    with torch.no_grad():
        ref = torch.softmax(torch.cat([classifier(**TextCollate(tok)([t])) for t in TEXTS]), 1).numpy()
    assert np.allclose(probs, ref, atol=1e-5) and (preds == ref.argmax(1)).all()


def test_sentence_encoder_is_shared():
    tok, enc = sentence_encoder("minilm")
    assert sentence_encoder("minilm")[1] is enc and not enc.training


# ------------------------------------------------------------------------------------------------------ words
def test_static_neighbours():
    out = static_neighbours("good", k=5)
    assert len(out) == 5 and all(isinstance(w, str) and -1 <= s <= 1 for w, s in out)
    assert [s for _, s in out] == sorted((s for _, s in out), reverse=True)
    assert "good" not in [w for w, _ in out]
    with pytest.raises(ValueError, match="split"):
        static_neighbours("unforgettable")


def test_contextual_vector_depends_on_context(classifier, tok):
    river = contextual_vector("we sat on the river bank", "bank")
    money = contextual_vector("she opened a bank account", "bank")
    river2 = contextual_vector("the muddy bank of the river", "bank")
    cos = torch.nn.functional.cosine_similarity
    assert river.shape == (384,)
    assert cos(river, money, dim=0) < cos(river, river2, dim=0) < 0.999
    static = contextual_vector("we sat on the river bank", "bank", layer=0)  # embeddings output: near-static
    assert static.shape == (384,)
    pieces = contextual_vector("an unforgettable film", "unforgettable", classifier, tokenizer=tok)
    assert pieces.shape == (384,)
    with pytest.raises(ValueError, match="occurs 0"):
        contextual_vector("no such word here", "bank")


# ------------------------------------------------------------------------------------------------------ pager
def test_text_error_pager():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    w = text_error_pager(["a", "b", "c <i>", "d"], [0, 0, 0, 1], [0, 1, 1, 1], probs=probs, class_names=["neg", "pos"])
    prev_btn, next_btn = w.children[0].children
    caption, body = w.children[1], w.children[2]
    assert "1/2" in caption.value and "text #2" in caption.value  # most confident mistake first (0.8)
    assert "c &lt;i&gt;" in body.value and prev_btn.disabled
    next_btn.click()
    assert "2/2" in caption.value and "text #1" in caption.value and next_btn.disabled
    ok = text_error_pager(["a"], [1], [1])
    assert "No misclassified" in ok.children[1].value
    with pytest.raises(ValueError, match="must match"):
        text_error_pager(["a", "b"], [1], [1, 0])


# ------------------------------------------------------------------------------------- one pooling, the field's tool
def test_frozen_embeddings_come_from_sentence_transformers(cache, monkeypatch):
    """A registered encoder with mean pooling runs through sentence-transformers' own modules (the weight package
    ships a sentence-transformers folder); they agree with the model card's pipeline (Normalize included) and
    with pooling by hand, which stays for loaded models and other poolings."""
    from sentence_transformers import SentenceTransformer

    from tlcourse.models import text_location

    mine = encode_sentences(TEXTS, "minilm", max_length=64, normalize=True, cache=False, progress=False)
    card = SentenceTransformer(text_location("minilm"), device="cpu")
    card.max_seq_length = 64
    np.testing.assert_allclose(mine, card.encode(TEXTS, convert_to_numpy=True), atol=1e-5)
    tok, enc = sentence_encoder("minilm")
    by_hand = encode_sentences(TEXTS, enc, tokenizer=tok, max_length=64, normalize=True, cache=False,
                               progress=False)
    np.testing.assert_allclose(mine, by_hand, atol=1e-5)

    def no_hand_pooling(*args, **kwargs):
        raise AssertionError("the registered encoder's mean embeddings should not be pooled by hand")

    monkeypatch.setattr(text, "_run_encoder", no_hand_pooling)
    encode_sentences(TEXTS[:2], "minilm", max_length=64, cache=False, progress=False)
    with pytest.raises(AssertionError, match="by hand"):  # cls pooling is not sentence-transformers' model
        encode_sentences(TEXTS[:2], "minilm", pooling="cls", max_length=64, cache=False, progress=False)


def test_text_pooling_is_the_package_registry():
    from tlcourse import features, pooling

    assert text.POOLINGS is pooling.POOLINGS is features.POOLS
    assert text.mean_pool is pooling.mean_pool
    with pytest.raises(ValueError, match="one per text"):
        SentenceClassifier(sentence_encoder("minilm")[1], 2, pooling="flat")

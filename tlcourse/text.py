"""Text helpers for the NLP lessons (04 domain adaptation, 06 sentiment): tokenised data, pooling, sentence
embeddings with an on-disk cache, a mean-pooling sentence classifier, word vectors, an error pager.

* **Tokenised data.** :class:`TokenizedTexts` tokenises a list of texts once (truncated, not padded);
  :class:`TextCollate` pads a batch to its longest member (or tokenises raw ``(text, label)`` items) and returns the
  dict that Hugging Face models and ``tlcourse.train.fit`` read (``input_ids``, ``attention_mask``, ``labels``);
  :class:`LengthGroupedSampler` puts sentences of similar length in the same batch, so little compute is spent on
  padding; :func:`text_loader` wires the three into a ``DataLoader``.
* **Pooling** comes from :mod:`tlcourse.pooling` (the package's one registry, re-exported here): ``mean``
  (attention-mask-weighted mean: how all-MiniLM-L6-v2 was trained), ``cls`` (first token), ``max``.
* **Sentence embeddings.** :func:`encode_sentences` runs a frozen encoder over texts and pools them; results are
  cached as ``.npz`` files in the course's cache (``tlcourse.cache``) keyed on the weights, texts and settings.
  :func:`sentence_encoder` is the shared frozen copy it uses.
* **Classifier.** :class:`SentenceClassifier` = encoder + pooling + linear head; forward returns logits, so
  ``fit`` / ``evaluate`` / ``predict`` train and score it like any other model; :func:`predict_texts` predicts
  a list of texts and returns the results in the order of the texts.
* **Words.** :func:`static_neighbours` searches the input embedding matrix (one vector per word piece, whatever the
  context); :func:`contextual_vector` reads a word's vector in a sentence from the encoder's hidden states.
* **Error analysis.** ``text_error_pager`` (the widget lives in ``tlcourse.viz``, with the same arguments as the
  image gallery; reachable here too): an ipywidgets pager over the misclassified texts.

Example:
    >>> import torch
    >>> h = torch.ones(1, 3, 2); h[0, 2] = 9.0          # the third token is padding
    >>> mean_pool(h, torch.tensor([[1, 1, 0]])).tolist()
    [[1.0, 1.0]]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tlcourse import cache as disk_cache
from tlcourse.config import profile
from tlcourse.data.samplers import LengthGroupedSampler
from tlcourse.device import get_device
from tlcourse.pooling import POOLINGS, cls_pool, flat_pool, get_pooling, max_pool, mean_pool

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = [
    "POOLINGS",
    "mean_pool",
    "cls_pool",
    "max_pool",
    "TokenizedTexts",
    "TextCollate",
    "LengthGroupedSampler",
    "text_loader",
    "SentenceClassifier",
    "load_sentence_classifier",
    "sentence_encoder",
    "encode_sentences",
    "predict_texts",
    "static_neighbours",
    "contextual_vector",
]

CACHE_FORMAT = 1  # bump when the meaning of a cached sentence-embedding file changes


# ------------------------------------------------------------------------------------------------ tokenised data
def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()


def _texts_and_labels(data: Any) -> tuple[list[str], list[int] | None]:
    """Texts and labels of a ``TextDataset`` (``.texts``/``.targets``), a list of (text, label) or of texts."""
    if hasattr(data, "texts"):
        targets = getattr(data, "targets", None)
        return list(data.texts), None if targets is None else [int(t) for t in targets]
    items = list(data)
    if items and isinstance(items[0], str):
        return items, None
    return [str(t) for t, _ in items], [int(y) for _, y in items]


def _tokenizer_name(tokenizer: Any) -> str:
    return str(getattr(tokenizer, "name_or_path", type(tokenizer).__name__)).rstrip("/").split("/")[-1]


class TokenizedTexts(Dataset):
    """Texts tokenised once — truncated to ``max_length``, not padded — with their labels.

    Items are dicts ``{"input_ids": [...], "attention_mask": [...], "labels": int}`` (``token_type_ids`` too when
    the tokenizer makes them); :class:`TextCollate` pads a list of them into a batch. ``lengths`` holds the token
    counts; ``fingerprint`` changes with the texts, labels, tokenizer and ``max_length``.

    Example:
        >>> from tlcourse.models import load_tokenizer
        >>> ds = TokenizedTexts(["a fine film", "dull"], [1, 0], load_tokenizer("minilm"), max_length=8)
        >>> ds.lengths, ds[1]["input_ids"]
        ([5, 3], [101, 10634, 102])
    """

    in_memory = True  # tlcourse.data.make_loader starts no worker processes for it

    def __init__(self, texts: Sequence[str], labels: Sequence[int] | None, tokenizer: Any, max_length: int) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 (room for [CLS] and [SEP]), got {max_length}")
        self.texts = [str(t) for t in texts]
        self.labels = None if labels is None else [int(y) for y in labels]
        if self.labels is not None and len(self.labels) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        self.max_length = int(max_length)
        enc = tokenizer(self.texts, truncation=True, max_length=self.max_length) if self.texts else {}
        self.encodings: dict[str, list[list[int]]] = {k: list(v) for k, v in dict(enc).items()}
        self.lengths: list[int] = [len(ids) for ids in self.encodings.get("input_ids", [])]
        self.fingerprint = (f"tokenized|{_tokenizer_name(tokenizer)}|max_length={self.max_length}|"
                            f"{_digest(self.texts, self.labels)[:24]}")

    @classmethod
    def from_data(cls, data: Any, tokenizer: Any, max_length: int) -> TokenizedTexts:
        """From a ``TextDataset`` (or a list of ``(text, label)`` pairs, or of texts).

        Example:
            >>> from tlcourse.models import load_tokenizer
            >>> len(TokenizedTexts.from_data([("good", 1), ("bad", 0)], load_tokenizer("minilm"), 16))
            2
        """
        texts, labels = _texts_and_labels(data)
        return cls(texts, labels, tokenizer, max_length)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {k: v[i] for k, v in self.encodings.items()}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item

    def __repr__(self) -> str:
        mean = float(np.mean(self.lengths)) if self.lengths else 0.0
        return f"TokenizedTexts({len(self)} texts, max_length={self.max_length}, mean length {mean:.1f} tokens)"


class TextCollate:
    """``collate_fn`` that makes a Hugging Face batch: a dict of ``input_ids``, ``attention_mask`` (padded to the
    longest text of the batch) and ``labels``.

    Items are dicts from :class:`TokenizedTexts` (padded only), ``(text, label)`` pairs or bare texts (tokenised
    here, truncated to ``max_length``). Picklable, so DataLoader workers can use it.

    Example:
        >>> from tlcourse.models import load_tokenizer
        >>> batch = TextCollate(load_tokenizer("minilm"), max_length=16)([("a fine film", 1), ("dull", 0)])
        >>> sorted(batch), batch["input_ids"].shape, batch["labels"].tolist()
        (['attention_mask', 'input_ids', 'labels', 'token_type_ids'], torch.Size([2, 5]), [1, 0])
    """

    def __init__(self, tokenizer: Any, max_length: int = 128) -> None:
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.fingerprint = f"TextCollate({_tokenizer_name(tokenizer)}, max_length={self.max_length})"

    def __call__(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("empty batch")
        first = items[0]
        labels: list[int] | None
        if isinstance(first, Mapping):
            labels = [int(it["labels"]) for it in items] if "labels" in first else None
            features = [{k: v for k, v in it.items() if k != "labels"} for it in items]
            batch = dict(self.tokenizer.pad(features, padding=True, return_tensors="pt"))
        else:
            if isinstance(first, str):
                texts, labels = list(items), None
            else:
                texts, labels = [str(t) for t, _ in items], [int(y) for _, y in items]
            batch = dict(self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                        return_tensors="pt"))
        if labels is not None:
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch

    def __repr__(self) -> str:
        return self.fingerprint


def text_loader(
    data: Any,
    tokenizer: Any,
    *,
    max_length: int,
    batch_size: int | None = None,
    shuffle: bool = False,
    by_length: bool = True,
    seed: int = 0,
    num_workers: int | None = None,
) -> DataLoader:
    """A DataLoader of Hugging Face batches (dicts with ``labels``) for ``fit`` / ``evaluate`` / ``predict``.

    ``data``: a :class:`TokenizedTexts` (used as it is), a ``TextDataset``, or a list of ``(text, label)``;
    texts are tokenised once. ``by_length`` groups texts of similar length (:class:`LengthGroupedSampler`); without
    ``shuffle`` the order is longest first, so predictions come back in *that* order — :func:`predict_texts`
    puts them back in the texts' order. ``batch_size`` defaults to the profile's; the texts are in memory, so no
    worker processes unless ``num_workers`` asks for them.

    Example:
        >>> from tlcourse.models import load_tokenizer
        >>> dl = text_loader([("good", 1), ("a truly bad film", 0)], load_tokenizer("minilm"), max_length=16)
        >>> next(iter(dl))["input_ids"].shape
        torch.Size([2, 6])
    """
    ds = data if isinstance(data, TokenizedTexts) else TokenizedTexts.from_data(data, tokenizer, max_length)
    prof = profile()
    bs = int(batch_size or prof.batch_size)
    sampler = LengthGroupedSampler(ds.lengths, bs, shuffle=shuffle, seed=seed) if by_length else None
    generator = torch.Generator().manual_seed(seed) if shuffle and not by_length else None
    from tlcourse.data import make_loader

    return make_loader(ds, batch_size=bs, shuffle=shuffle and not by_length, sampler=sampler, generator=generator,
                       collate_fn=TextCollate(tokenizer, max_length), num_workers=num_workers)


# --------------------------------------------------------------------------------------------------- classifier
class SentenceClassifier(nn.Module):
    """Encoder + pooling + linear head: ``forward(input_ids, attention_mask, ...)`` returns logits ``(B, labels)``.

    ``BertForSequenceClassification`` classifies from the ``[CLS]`` token through a pooler layer; sentence
    encoders such as all-MiniLM-L6-v2 were trained on the **mean** of their token vectors, so this head reads
    the pooled vector the encoder was trained to produce (``pooling`` from :data:`POOLINGS`). The encoder is
    ``self.bert`` (its unused ``pooler`` is removed), the head ``self.classifier``; ``tlcourse.freeze`` sees
    the layer groups embeddings, encoder.0 … encoder.N-1, head.

    Example:
        >>> tok, model = load_sentence_classifier("minilm", num_labels=2)
        >>> batch = TextCollate(tok)(["a fine film", "dull"])
        >>> model(**batch).shape
        torch.Size([2, 2])
    """

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "mean", dropout: float = 0.0) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        if get_pooling(pooling) is flat_pool:
            raise ValueError("pooling='flat' gives a vector per token, not one per text; choose mean, cls or max")
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # BERT's [CLS] pooler: unused here, and it would never get a gradient
        self.bert = encoder
        self.config = encoder.config  # peft and Hugging Face utilities read model.config
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(int(encoder.config.hidden_size), int(num_labels))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled text vectors ``(B, H)`` that the head reads.

        Example:
            >>> tok, model = load_sentence_classifier("minilm")
            >>> model.embed(**TextCollate(tok)(["ok"])).shape
            torch.Size([1, 384])
        """
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return get_pooling(self.pooling)(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(input_ids, attention_mask, token_type_ids)))


# the sentence classifier's architecture, in one place: its layer groups (tlcourse.freeze) and how each group runs
# on cached states (tlcourse.trunk)
def _groups_sentence_classifier(m: nn.Module) -> list[Any]:
    from tlcourse.freeze import LayerGroup

    groups = [LayerGroup("embeddings", [m.bert.embeddings])]
    groups += [LayerGroup(f"encoder.{i}", [layer]) for i, layer in enumerate(m.bert.encoder.layer)]
    groups.append(LayerGroup("head", [m.classifier, m.dropout]))  # dropout: no weights, but train/eval mode
    return groups


def _bert_layer(encoder: nn.Module, layer: nn.Module) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    from transformers.masking_utils import create_bidirectional_mask

    def run(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=state["hidden_states"],
                                         attention_mask=state["attention_mask"])
        out = layer(state["hidden_states"], attention_mask=mask)
        return {**state, "hidden_states": out[0] if isinstance(out, tuple) else out}

    return run


def _runs_sentence_classifier(m: nn.Module) -> dict[str, Callable[..., Any]]:
    bert = m.bert

    def embed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hidden = bert.embeddings(input_ids=state["input_ids"], token_type_ids=state.get("token_type_ids"))
        return {"hidden_states": hidden, "attention_mask": state["attention_mask"]}

    def head(state: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = get_pooling(m.pooling)(state["hidden_states"], state["attention_mask"])
        return m.classifier(m.dropout(pooled))

    layers = {f"encoder.{i}": _bert_layer(bert, layer) for i, layer in enumerate(bert.encoder.layer)}
    return {"embeddings": embed, **layers, "head": head}


def _register_architecture() -> None:
    from tlcourse.freeze import LAYER_GROUPERS
    from tlcourse.trunk import STAGERS

    LAYER_GROUPERS.setdefault("SentenceClassifier", _groups_sentence_classifier)
    STAGERS.setdefault("SentenceClassifier", _runs_sentence_classifier)


_register_architecture()


def load_sentence_classifier(name: str = "minilm", num_labels: int = 2, pooling: str = "mean",
                             dropout: float = 0.0) -> tuple[Any, SentenceClassifier]:
    """``(tokenizer, SentenceClassifier)``: a pretrained text encoder, ``pooling``, a new head of ``num_labels``.

    Example:
        >>> tok, model = load_sentence_classifier("minilm", num_labels=3)
        >>> model.classifier.out_features, model.pooling
        (3, 'mean')
    """
    from tlcourse.models import load_backbone, load_tokenizer

    model = SentenceClassifier(load_backbone(name), num_labels, pooling=pooling, dropout=dropout)
    model.tlcourse_backbone = name  # type: ignore[attr-defined]
    model.tlcourse_weights = getattr(model.bert, "tlcourse_weights", name)  # type: ignore[attr-defined]
    return load_tokenizer(name), model


# -------------------------------------------------------------------------------------------- sentence vectors
@lru_cache(maxsize=2)
def sentence_encoder(name: str = "minilm") -> tuple[Any, nn.Module]:
    """``(tokenizer, encoder)`` of a registered text backbone, loaded once per session and shared (eval mode).

    :func:`encode_sentences`, :func:`static_neighbours` and :func:`contextual_vector` use this copy when given a
    name; read from it freely, but train a model of your own (``load_sentence_classifier``), not this one.

    Example:
        >>> tok, enc = sentence_encoder("minilm")
        >>> sentence_encoder("minilm")[1] is enc, enc.config.hidden_size
        (True, 384)
    """
    from tlcourse.models import load_backbone, load_tokenizer

    return load_tokenizer(name), load_backbone(name).eval()


@lru_cache(maxsize=2)
def _registered_weights(name: str) -> str:
    """Digest of a registered encoder's weights (computed once per session: they never change)."""
    from tlcourse.features import weights_fingerprint

    return weights_fingerprint(sentence_encoder(name)[1])


def _encoder_of(model: nn.Module) -> nn.Module:
    """The bare encoder: a SentenceClassifier's ``bert``, a ``...ForSequenceClassification``'s base model."""
    if isinstance(model, SentenceClassifier):
        return model.bert
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) and base is not model else model


def _embedding_cache_path(key: str, name: str, pooling: str) -> Path:
    return disk_cache.file_path(f"text-{name}-{pooling}", key)


def _run_encoder(encoder: nn.Module, tokenizer: Any, texts: list[str], pool: Callable, max_length: int,
                 batch_size: int, device: torch.device, progress: bool, desc: str) -> np.ndarray:
    """Pooled vectors of ``texts`` in their order (batches of similar length; eval mode, no gradients)."""
    ds = TokenizedTexts(texts, None, tokenizer, max_length)
    order = np.argsort(-np.asarray(ds.lengths), kind="stable")
    collate = TextCollate(tokenizer, max_length)
    out = np.zeros((len(texts), int(encoder.config.hidden_size)), dtype=np.float32)
    was_training = encoder.training
    encoder.eval().to(device)
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=not progress):
                idx = order[start:start + batch_size]
                batch = {k: v.to(device) for k, v in collate([ds[int(i)] for i in idx]).items()}
                hidden = encoder(**batch).last_hidden_state
                out[idx] = pool(hidden, batch["attention_mask"]).float().cpu().numpy()
    finally:
        encoder.train(was_training)
    return out


@lru_cache(maxsize=2)
def _sentence_transformer(name: str) -> Any:
    """The registered encoder as sentence-transformers' own pipeline — its ``Transformer`` module and a mean
    ``Pooling`` (the one all-MiniLM-L6-v2 was trained with), read from the weight package's folder; no ``Normalize``
    step (``encode_sentences(normalize=...)`` decides). None when the folder is no sentence-transformers model."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from tlcourse.models import text_location

    folder = Path(text_location(name))
    if not (folder / "modules.json").is_file():
        return None
    transformer = Transformer(str(folder))
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def _run_sentence_transformer(model: Any, texts: list[str], max_length: int, batch_size: int,
                              device: torch.device, progress: bool) -> np.ndarray:
    model.max_seq_length = max_length  # one loaded model serves every length (truncation is set per call)
    model.to(device)
    vectors = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=False,
                           show_progress_bar=progress)
    return np.asarray(vectors, dtype=np.float32)


def encode_sentences(
    texts: Sequence[str],
    model: str | nn.Module = "minilm",
    *,
    tokenizer: Any = None,
    batch_size: int = 64,
    max_length: int = 128,
    pooling: str = "mean",
    normalize: bool = False,
    cache: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Frozen sentence embeddings ``(N, H)`` (float32, in the order of ``texts``), cached on disk.

    ``model`` is a registered text backbone name (``"minilm"``: all-MiniLM-L6-v2, the tokenizer comes with it) or
    a loaded encoder / :class:`SentenceClassifier` / ``...ForSequenceClassification`` (then pass ``tokenizer``).
    Texts are truncated to ``max_length`` tokens, run in batches of similar length, and pooled with ``pooling``
    (:data:`POOLINGS`) — a registered name with mean pooling runs through sentence-transformers (the model's own
    ``Transformer`` + ``Pooling`` modules), anything else through the encoder here; ``normalize`` scales each vector to unit length (what sentence-transformers does for
    all-MiniLM-L6-v2). The cache file (``tlcourse.features.cache_dir()``) is keyed on a digest of every weight,
    the texts, ``max_length``, ``pooling`` and ``normalize``; ``cache=False`` skips it.

    Example:
        >>> X = encode_sentences(["a gripping, moving film", "a dull mess"], max_length=32, progress=False)
        >>> X.shape, X.dtype
        ((2, 384), dtype('float32'))
    """
    from tlcourse.features import weights_fingerprint

    pool = get_pooling(pooling)
    texts = [str(t) for t in texts]
    plain = isinstance(model, str) and tokenizer is None and pool is mean_pool  # sentence-transformers' own case
    if isinstance(model, str):
        tok, encoder = sentence_encoder(model)
        tokenizer = tokenizer or tok
        name, weights = model, _registered_weights(model)
    else:
        if tokenizer is None:
            raise ValueError("pass the model's tokenizer: encode_sentences(texts, model, tokenizer=tok)")
        encoder = _encoder_of(model)
        name = str(getattr(model, "tlcourse_backbone", type(encoder).__name__))
        weights = weights_fingerprint(encoder) if cache else ""
    dev = get_device(device)
    if not texts:
        return np.zeros((0, int(encoder.config.hidden_size)), dtype=np.float32)
    key = _digest(CACHE_FORMAT, name, weights, _tokenizer_name(tokenizer), max_length, pooling, texts)
    path = _embedding_cache_path(key, name, pooling)
    stored = disk_cache.load(path) if cache else None
    vectors = stored.get("vectors") if stored else None
    if vectors is None or vectors.shape[0] != len(texts):
        st_model = _sentence_transformer(model) if plain else None
        if st_model is not None:  # the field's tool where the lesson does not teach pooling itself
            vectors = _run_sentence_transformer(st_model, texts, max_length, batch_size, dev, progress)
        else:
            vectors = _run_encoder(encoder, tokenizer, texts, pool, max_length, batch_size, dev, progress,
                                   f"encode {len(texts)} texts")
        if cache:
            disk_cache.save(path, vectors=vectors)
    if normalize:
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    return vectors.astype(np.float32, copy=False)


def predict_texts(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted classes (N,), probabilities (N, K))`` of a text classifier, in the order of ``texts``.

    Batches hold texts of similar length (fast); the results are put back in the input order.

    Example:
        >>> tok, model = load_sentence_classifier("minilm")
        >>> preds, probs = predict_texts(model, tok, ["great", "awful film"], progress=False)
        >>> preds.shape, probs.shape
        ((2,), (2, 2))
    """
    from tlcourse.train import predict

    texts = [str(t) for t in texts]
    loader = text_loader(texts, tokenizer, max_length=max_length, batch_size=batch_size, shuffle=False)
    order = loader.sampler.order()  # type: ignore[union-attr]
    preds, probs = predict(model, loader, device=device, return_probs=True, progress=progress)
    out_preds, out_probs = np.empty_like(preds), np.empty_like(probs)
    out_preds[order], out_probs[order] = preds, probs
    return out_preds, out_probs


# ---------------------------------------------------------------------------------------------------- words
def _input_embeddings(model: nn.Module) -> torch.Tensor:
    return _encoder_of(model).get_input_embeddings().weight


def _model_and_tokenizer(model: str | nn.Module, tokenizer: Any, usage: str) -> tuple[Any, nn.Module]:
    """(tokenizer, model) from a registry name (its own tokenizer unless one is given) or a module + tokenizer."""
    if isinstance(model, str):
        tok, encoder = sentence_encoder(model)
        return tokenizer or tok, encoder
    if tokenizer is None:
        raise ValueError(f"pass the model's tokenizer: {usage}")
    return tokenizer, model


def static_neighbours(word: str, model: str | nn.Module = "minilm", *, tokenizer: Any = None,
                      k: int = 8) -> list[tuple[str, float]]:
    """The ``k`` word pieces whose **input embeddings** (the static, context-free vectors) are closest to ``word``'s
    by cosine similarity, most similar first (``[unused…]`` and special tokens skipped).

    ``word`` must be one word piece of the vocabulary (``tokenizer.tokenize(word)`` gives one piece).

    Example:
        >>> [w for w, _ in static_neighbours("good", k=3)]  # doctest: +SKIP
        ['great', 'bad', 'nice']
    """
    tokenizer, encoder = _model_and_tokenizer(model, tokenizer, "static_neighbours(word, model, tokenizer=tok)")
    pieces = tokenizer.tokenize(word)
    if len(pieces) != 1:
        raise ValueError(f"{word!r} is split into {pieces}: pick a word that is a single word piece")
    table = _input_embeddings(encoder).detach().float()
    unit = table / table.norm(dim=1, keepdim=True).clamp(min=1e-12)
    wid = tokenizer.convert_tokens_to_ids(pieces[0])
    sims = unit @ unit[wid]
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(sims))))
    special = set(getattr(tokenizer, "all_special_tokens", []))
    out: list[tuple[str, float]] = []
    for i in torch.argsort(sims, descending=True).tolist():
        tok_i = vocab[i]
        if i == wid or tok_i in special or tok_i.startswith("[unused") or tok_i.startswith("##"):
            continue
        out.append((tok_i, float(sims[i])))
        if len(out) == k:
            break
    return out


def contextual_vector(sentence: str, word: str, model: str | nn.Module = "minilm", *, tokenizer: Any = None,
                      layer: int = -1, occurrence: int = 0) -> torch.Tensor:
    """The hidden vector ``(H,)`` of ``word`` inside ``sentence`` (mean over its word pieces) at ``layer``
    (``0``: the embedding layer's output, ``-1``: the last layer).

    Example:
        >>> a = contextual_vector("we sat on the river bank", "bank")
        >>> b = contextual_vector("she opened a bank account", "bank")
        >>> a.shape, bool(torch.cosine_similarity(a, b, dim=0) < 0.99)
        (torch.Size([384]), True)
    """
    tokenizer, encoder = _model_and_tokenizer(model, tokenizer,
                                              "contextual_vector(sentence, word, model, tokenizer=tok)")
    encoder = _encoder_of(encoder)
    target = tokenizer(word, add_special_tokens=False)["input_ids"]
    enc = tokenizer(sentence, return_tensors="pt")
    ids = enc["input_ids"][0].tolist()
    starts = [i for i in range(len(ids) - len(target) + 1) if ids[i:i + len(target)] == target]
    if len(starts) <= occurrence:
        raise ValueError(f"{word!r} (pieces {tokenizer.convert_ids_to_tokens(target)}) occurs {len(starts)} time(s) "
                         f"in {sentence!r}")
    start = starts[occurrence]
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            dev = next(encoder.parameters()).device
            out = encoder(**{k: v.to(dev) for k, v in enc.items()}, output_hidden_states=True)
    finally:
        encoder.train(was_training)
    hidden = out.hidden_states[layer][0]
    return hidden[start:start + len(target)].mean(dim=0).float().cpu()


# ------------------------------------------------------------------------------------------------ error pager


def __getattr__(name: str) -> Any:
    """``tlcourse.text.text_error_pager`` is the widget of ``tlcourse.viz`` (imported on use: widgets live there)."""
    if name == "text_error_pager":
        from tlcourse.viz import text_error_pager

        return text_error_pager
    raise AttributeError(f"module 'tlcourse.text' has no attribute {name!r}")

"""Tests of tlcourse.features: shapes, the on-disk cache (counted), hooks and flags, probes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from tlcourse import features as F


class Bright(TensorDataset):
    """Bright (class 1) vs dark (class 0) noisy images: linearly separable after average pooling."""

    def __init__(self, n: int = 64, seed: int = 0, size: int = 12) -> None:
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % 2
        x = torch.randn(n, 3, size, size, generator=g) * 0.3 + (y.float() * 2 - 1).view(-1, 1, 1, 1)
        super().__init__(x, y)
        self.fingerprint = f"bright|n={n}|seed={seed}|size={size}"


def tiny_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # "0"
        nn.BatchNorm2d(8),  # "1"
        nn.ReLU(),  # "2"
        nn.Conv2d(8, 16, 3, padding=1),  # "3"
        nn.ReLU(),  # "4"
        nn.AdaptiveAvgPool2d(1),  # "5"
        nn.Flatten(),  # "6"
        nn.Linear(16, 2),  # "7"
    )


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TLCOURSE_PROFILE", "grading")
    F.CACHE_STATS.update(hits=0, misses=0)


def extract(model, data, layer=None, **kw):
    return F.extract_features(model, data, layer, device="cpu", progress=False, **kw)


# ----------------------------------------------------------------------------------------------- shapes
def test_shapes_and_dtypes_penultimate_and_named_layers():
    model, ds = tiny_cnn(), Bright(20)
    X, y = extract(model, ds, cache=False)
    assert X.shape == (20, 16) and X.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == ds.tensors[1].tolist()
    X0, _ = extract(model, ds, "0", cache=False)
    X3, _ = extract(model, ds, "3", cache=False)
    assert X0.shape == (20, 8) and X3.shape == (20, 16)
    # "3" pooled by hand: the conv output averaged over H×W
    model.eval()
    with torch.no_grad():
        ref = model[:4](ds.tensors[0]).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(X3, ref, rtol=1e-5, atol=1e-5)
    # layer=None is the input of the final Linear
    with torch.no_grad():
        ref_pen = model[:7](ds.tensors[0]).numpy()
    np.testing.assert_allclose(X, ref_pen, rtol=1e-5, atol=1e-5)


def test_pooling_variants_and_token_outputs():
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(4, 6)
            self.classifier = nn.Linear(6, 2)

        def forward(self, x):  # x: (N, T, 4) → tokens (N, T, 6)
            return self.classifier(self.embed(x).mean(1))

    x = torch.randn(10, 5, 4)
    ds = TensorDataset(x, torch.arange(10) % 2)
    model = Tokens()
    avg, _ = extract(model, ds, "embed", cache=False)
    mx, _ = extract(model, ds, "embed", cache=False, pool="max")
    cls, _ = extract(model, ds, "embed", cache=False, pool="cls")
    with torch.no_grad():
        tok = model.embed(x)
    np.testing.assert_allclose(avg, tok.mean(1).numpy(), atol=1e-6)
    np.testing.assert_allclose(mx, tok.amax(1).numpy(), atol=1e-6)
    np.testing.assert_allclose(cls, tok[:, 0].numpy(), atol=1e-6)
    assert F.penultimate_strategy(model) == "head_input"
    with pytest.raises(ValueError, match="unknown pool"):
        extract(model, ds, "embed", cache=False, pool="median")


def test_extract_layers_one_pass_matches_single_calls():
    model, ds = tiny_cnn(), Bright(16)
    calls = []
    handle = model[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        feats, y = F.extract_layers(model, ds, ["0", "3", None], cache=False, device="cpu", progress=False,
                                    batch_size=8)
    finally:
        handle.remove()
    assert len(calls) == 2  # 16 images / batch 8: one forward pass per batch for all three layers
    assert list(feats) == ["0", "3", "penultimate"]
    assert [v.shape[1] for v in feats.values()] == [8, 16, 16]
    np.testing.assert_allclose(feats["3"], extract(model, ds, "3", cache=False)[0], atol=1e-6)


def test_dataloader_input_and_bad_inputs():
    model, ds = tiny_cnn(), Bright(12)
    X, y = extract(model, DataLoader(ds, batch_size=5))
    assert X.shape == (12, 16) and len(y) == 12
    with pytest.raises(ValueError, match="no module named 'blocks.9'"):
        extract(model, ds, "blocks.9")
    with pytest.raises(TypeError, match="list of names"):
        F.extract_layers(model, ds, "3")
    with pytest.raises(TypeError, match=r"\(inputs, labels\)"):
        extract(model, TensorDataset(torch.randn(4, 3, 8, 8)), cache=False)
    with pytest.raises(ValueError, match="penultimate features"):
        extract(nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU()), ds, cache=False)


# ------------------------------------------------------------------------------------------------ cache
def test_cache_hit_then_miss_on_every_key_part(monkeypatch, tmp_path):
    model, ds = tiny_cnn(), Bright(16)
    fresh, y = extract(model, ds, "3")
    assert F.CACHE_STATS == {"hits": 0, "misses": 1}
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    cached, y2 = extract(model, ds, "3")
    assert F.CACHE_STATS == {"hits": 1, "misses": 1}
    np.testing.assert_array_equal(cached, fresh)
    np.testing.assert_array_equal(y2, y)

    extract(model, ds, "0")  # another layer
    assert F.CACHE_STATS == {"hits": 1, "misses": 2}
    extract(model, ds, "3", pool="max")  # another pooling
    assert F.CACHE_STATS == {"hits": 1, "misses": 3}

    other = Bright(16)
    other.fingerprint = "bright|changed"
    extract(model, other, "3")  # another dataset fingerprint
    assert F.CACHE_STATS == {"hits": 1, "misses": 4}

    monkeypatch.setenv("TLCOURSE_PROFILE", "cpu")  # another profile
    extract(model, ds, "3")
    assert F.CACHE_STATS == {"hits": 1, "misses": 5}
    monkeypatch.setenv("TLCOURSE_PROFILE", "grading")
    extract(model, ds, "3")
    assert F.CACHE_STATS == {"hits": 2, "misses": 5}

    with torch.no_grad():  # one weight changed
        model[3].weight[0, 0, 0, 0] += 0.5
    changed, _ = extract(model, ds, "3")
    assert F.CACHE_STATS == {"hits": 2, "misses": 6}
    assert not np.allclose(changed, fresh)
    model[1].running_mean += 1.0  # a buffer (BatchNorm statistics) changed
    extract(model, ds, "3")
    assert F.CACHE_STATS == {"hits": 2, "misses": 7}

    assert F.clear_cache() == 7
    extract(model, ds, "3")
    assert F.CACHE_STATS == {"hits": 2, "misses": 8}


def test_cache_transform_and_multi_layer_partial_hits():
    model, ds = tiny_cnn(), Bright(8)
    ds.transform = "ToTensor()"  # a dataset transform's repr is part of the key
    extract(model, ds, "0")
    ds.transform = "Resize(64)"
    extract(model, ds, "0")
    assert F.CACHE_STATS == {"hits": 0, "misses": 2}
    F.extract_layers(model, ds, ["0", "3"], device="cpu", progress=False)
    assert F.CACHE_STATS == {"hits": 1, "misses": 3}  # "0" from disk, only "3" computed


def test_cache_data_home_default_and_no_fingerprint_warning(monkeypatch, tmp_path):
    monkeypatch.delenv("TLCOURSE_CACHE_DIR")
    monkeypatch.setenv("TLCOURSE_DATA_HOME", str(tmp_path / "home"))
    assert F.cache_dir() == tmp_path / "home" / ".cache" / "features"

    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.full((3, 6, 6), float(i)), i % 2

    model = tiny_cnn()
    F._WARNED.clear()
    with pytest.warns(UserWarning, match="feature cache disabled"):
        extract(model, Plain())
    extract(model, Plain())
    assert F.CACHE_STATS == {"hits": 0, "misses": 0}
    assert not F.cache_dir().exists()

    # TensorDataset without a fingerprint is digested exactly; a Subset keys on its indices
    base = TensorDataset(torch.randn(6, 3, 6, 6), torch.arange(6) % 2)
    extract(model, base)
    extract(model, TensorDataset(base.tensors[0].clone(), base.tensors[1]))
    assert F.CACHE_STATS == {"hits": 1, "misses": 1}
    base.tensors[0][0, 0, 0, 0] += 1
    extract(model, base)
    extract(model, Subset(base, [0, 1, 2]))
    Xs, ys = extract(model, Subset(base, [0, 1, 3]))
    assert F.CACHE_STATS == {"hits": 1, "misses": 4}
    assert ys.tolist() == [0, 1, 1]


# ------------------------------------------------------------------------------- hooks and training flags
def test_hooks_removed_and_training_flags_restored():
    model = tiny_cnn()
    model.train()
    model[1].eval()  # a frozen BatchNorm kept in eval inside a training model
    before = {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()}
    F.extract_layers(model, Bright(8), ["0", "3", None], device="cpu", progress=False, cache=False)
    after = {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()}
    assert after == before
    assert model.training and model[0].training and not model[1].training
    assert model[0].weight.is_contiguous() and model[3].weight.is_contiguous()  # NCHW again after an NHWC pass
    model.to(memory_format=torch.channels_last)  # a channels-last model stays channels-last
    extract(model, Bright(4), "3", cache=False)
    assert model[3].weight.is_contiguous(memory_format=torch.channels_last) and not model[3].weight.is_contiguous()

    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    failing = nn.Sequential(nn.Conv2d(3, 2, 1), Broken(), nn.Flatten(), nn.Linear(2, 2))
    for layers in ([None, "0"], ["0", "2"]):  # the model fails mid-pass: hooks still removed, flags restored
        with pytest.raises(RuntimeError, match="boom"):
            F.extract_layers(failing, Bright(4), layers, device="cpu", progress=False, cache=False)
    assert all(len(m._forward_hooks) == 0 and len(m._forward_pre_hooks) == 0 for m in failing.modules())
    assert failing.training


def test_early_stop_skips_later_layers():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("later layers must not run")

    model = nn.Sequential(nn.Conv2d(3, 4, 1), Broken(), nn.Flatten(), nn.Linear(4, 2))
    X, _ = extract(model, Bright(4), "0", cache=False)
    assert X.shape == (4, 4)


# ------------------------------------------------------------------------------------------------ probes
def test_linear_probe_separable_and_shuffled():
    model = tiny_cnn()
    Xtr, ytr = extract(model, Bright(64, seed=0))
    Xte, yte = extract(model, Bright(64, seed=1))
    result = F.linear_probe(Xtr, ytr, Xte, yte)
    assert result.test_accuracy >= 0.98 and result.train_accuracy == 1.0
    assert result.n_features == 16 and result.seconds > 0 and result.balanced_accuracy >= 0.98
    assert (result.predict(Xte) == yte).mean() == result.test_accuracy
    shuffled = np.random.default_rng(0).permutation(ytr)
    chance = F.linear_probe(Xtr, shuffled, Xte, yte)
    assert 0.25 <= chance.test_accuracy <= 0.75
    cv = F.linear_probe(Xtr, ytr, Xte, yte, C="cv")
    assert cv.C in F.C_GRID and cv.test_accuracy >= 0.98


def test_linear_probe_multiclass_and_errors():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 120)
    X = np.eye(4)[y] * 3 + rng.normal(size=(120, 4))
    r = F.linear_probe(X[:80], y[:80], X[80:], y[80:])
    assert r.test_accuracy > 0.8
    with pytest.raises(ValueError, match="single class"):
        F.linear_probe(X, np.zeros(120), X, y)
    with pytest.raises(ValueError, match="features"):
        F.linear_probe(X, y, X[:, :2], y)
    with pytest.raises(ValueError, match="C must be"):
        F.linear_probe(X, y, X, y, C=-1)


def test_layerwise_probe_rows_and_columns():
    model = tiny_cnn()
    df = F.layerwise_probe(model, [None, "3", "0"], Bright(32, seed=0), Bright(32, seed=1),
                           device="cpu", progress=False, max_iter=500)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["layer", "depth", "dim", "test_accuracy", "train_accuracy", "seconds"]
    assert df["layer"].tolist() == ["0", "3", "penultimate"]  # network order
    assert df["depth"].tolist() == [0, 1, 2] and df["dim"].tolist() == [8, 16, 16]
    assert df["test_accuracy"].between(0, 1).all() and df["test_accuracy"].max() >= 0.9
    assert F.CACHE_STATS["misses"] == 6  # 3 layers × (train, test), each cached
    with pytest.raises(TypeError, match="unexpected keyword"):
        F.layerwise_probe(model, ["0"], Bright(8), Bright(8), lr=0.1)


def test_time_it():
    with F.time_it() as t:
        sum(range(10_000))
    assert 0 < t.seconds < 5 and t.seconds == t.seconds  # frozen after the block


# ------------------------------------------------------------------------------------- the real backbone
@pytest.mark.slow
def test_efficientnet_lite0_penultimate_and_block_features():
    from tlcourse.models import load_backbone

    model = load_backbone("efficientnet_lite0")
    ds = TensorDataset(torch.randn(8, 3, 64, 64), torch.arange(8) % 2)
    assert F.penultimate_strategy(model) == "timm"
    X, y = extract(model, ds)
    assert X.shape == (8, 1280) and X.dtype == np.float32
    feats, _ = F.extract_layers(model, ds, ["blocks.3", None], device="cpu", progress=False)
    assert feats["blocks.3"].shape == (8, 80)
    np.testing.assert_allclose(feats["penultimate"], X, rtol=1e-4, atol=1e-4)
    assert F.CACHE_STATS == {"hits": 1, "misses": 2}


def test_hooked_token_layers_pool_over_real_tokens_only():
    """A hooked transformer layer is pooled over each text's real tokens (the batch's attention mask): a short
    sentence gets the same vector alone as padded beside a long one (the old feature pooling averaged padding in)."""
    from torch.utils.data import DataLoader

    from tlcourse.text import TextCollate, TokenizedTexts, sentence_encoder

    tok, enc = sentence_encoder("minilm")
    texts = ["short .", "a much longer sentence that forces the short one to be padded with many tokens ."]
    collate = TextCollate(tok, 64)
    data = TokenizedTexts(texts, [0, 1], tok, 64)
    together, _ = extract(enc, DataLoader(data, batch_size=2, collate_fn=collate), "encoder.layer.2", cache=False)
    alone, _ = extract(enc, DataLoader(data, batch_size=1, collate_fn=collate), "encoder.layer.2", cache=False)
    np.testing.assert_allclose(together, alone, atol=1e-4)

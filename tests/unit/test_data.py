"""Tests of ``tlcourse.data``: registry, resolution (data home → mirror → download), verification, loaders."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import shutil
import socket
import tarfile
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import transforms

from tlcourse import data as D

_env_mirror = os.environ.get("TLCOURSE_DATA_MIRROR", "").strip()
MIRROR = Path(_env_mirror) if _env_mirror else Path(__file__).resolve().parents[3] / "shared" / "data"
needs_mirror = pytest.mark.skipif(
    not MIRROR.is_dir(),
    reason=f"no dataset mirror at {MIRROR} (set TLCOURSE_DATA_MIRROR to a folder laid out like shared/data)",
)

TF = transforms.Compose([transforms.Resize((32, 32)), transforms.ToTensor()])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data home, and no mirror."""
    monkeypatch.setenv("TLCOURSE_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("TLCOURSE_DATA_MIRROR", raising=False)
    return tmp_path


@pytest.fixture
def mirror(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data home and the shared mirror."""
    if not MIRROR.is_dir():
        pytest.skip(f"no dataset mirror at {MIRROR}")
    monkeypatch.setenv("TLCOURSE_DATA_MIRROR", str(MIRROR))
    return MIRROR


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------ registry
def test_registry_entries_are_complete() -> None:
    expected = {"hymenoptera", "breastmnist", "pneumoniamnist", "rt_polarity", "amazon_reviews", "sst2",
                "mnist_test", "usps", "fashion_mnist"}
    assert set(D.DATASETS) == expected
    for name, spec in D.DATASETS.items():
        assert spec.name == name
        assert spec.title and spec.licence and spec.citation and spec.homepage and spec.description
        assert len(spec.classes) >= 2 and spec.sizes
        assert spec.files or spec.digest, f"{name} verifies nothing"
        assert all(len(h) == 64 for h in spec.files.values())
        for dl in spec.downloads:
            assert dl.kind in D.EXTRACTORS
            assert all(u.startswith(("http://", "https://")) for u in dl.urls)
            assert dl.target == spec.folder or dl.target.startswith(spec.folder + "/")
        for rel in spec.files:  # every verified file is produced by some download
            full = f"{spec.folder}/{rel}"
            assert any(full == d.target or full.startswith(d.target + "/") for d in spec.downloads), full
    assert D.DATASETS["hymenoptera"].file_count == 398
    assert len(D.DATASETS["amazon_reviews"].files) == 8


def test_unknown_names_and_splits_are_rejected(home: Path) -> None:
    with pytest.raises(ValueError, match="choose one of"):
        D.fetch("imagenet")
    with pytest.raises(ValueError, match="'val'"):
        D.load_usps("val")
    with pytest.raises(ValueError, match="kitchen"):
        D.load_amazon_reviews("garden")
    with pytest.raises(ValueError, match="breastmnist"):
        D.load_medmnist("chestmnist")
    with pytest.raises(ValueError, match="per_class"):
        D.select_indices([0, 1], per_class=0)


def test_data_home_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TLCOURSE_DATA_HOME", raising=False)
    assert D.data_home() == Path(__file__).resolve().parents[2] / "datasets"  # datasets/ in the checkout
    monkeypatch.setenv("TLCOURSE_DATA_HOME", str(tmp_path / "new"))
    assert D.data_home() == tmp_path / "new" and (tmp_path / "new").is_dir()
    monkeypatch.delenv("TLCOURSE_DATA_MIRROR", raising=False)
    assert D.mirror_dir() is None
    monkeypatch.setenv("TLCOURSE_DATA_MIRROR", str(tmp_path))
    assert D.mirror_dir() == tmp_path


# ------------------------------------------------------------------------------------------------ mirror
@needs_mirror
@pytest.mark.parametrize("name", sorted(D.DATASETS))
def test_every_dataset_resolves_from_the_mirror(name: str, mirror: Path, home: Path) -> None:
    spec = D.DATASETS[name]
    if not (mirror / spec.folder).is_dir() and spec.system_copies:  # the mirror lacks it: the OS package's copy
        if not any(Path(c.folder).is_dir() for c in spec.system_copies):
            pytest.skip(f"{name}: neither in the mirror nor installed ({spec.system_copies[0].package})")
        assert D.verify(name).where == "system package"  # tests/unit/test_capstone_data.py tests that copy
        return
    assert D.fetch(name, download=False) == mirror / spec.folder
    report = D.verify(name)
    assert report.ok and report.where == "mirror" and report.problems == ()
    assert list(home.iterdir()) == []  # the mirror is read, nothing is copied


@needs_mirror
def test_dataset_status_table(mirror: Path) -> None:
    table = D.dataset_status()
    assert list(table["name"]) == list(D.DATASETS)
    packaged = table["name"].map(lambda n: bool(D.DATASETS[n].system_copies) and
                                 not (mirror / D.DATASETS[n].folder).is_dir())
    assert table[~packaged]["ok"].all() and set(table[~packaged]["found"]) == {"mirror"}
    assert set(table[packaged]["found"]) <= {"system package", "missing"}


@needs_mirror
def test_corrupted_copy_in_data_home_is_rejected(mirror: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = home / "medmnist" / "breastmnist.npz"
    bad.parent.mkdir()
    bad.write_bytes(b"not an npz")
    assert D.fetch("breastmnist", download=False) == mirror / "medmnist"  # falls through to the mirror
    monkeypatch.delenv("TLCOURSE_DATA_MIRROR")
    report = D.verify("breastmnist")
    assert not report.ok and any("expected sha256" in p for p in report.problems)
    with pytest.raises(D.DatasetUnavailableError, match="expected sha256"):
        D.fetch("breastmnist", download=False)
    with pytest.raises(D.DatasetUnavailableError):
        D.load_medmnist("breastmnist", "test", transform=TF, download=False)


@needs_mirror
def test_good_copy_in_data_home_wins_and_later_damage_is_seen(mirror: Path, home: Path) -> None:
    shutil.copytree(mirror / "usps", home / "usps")
    assert D.fetch("usps", download=False) == home / "usps"
    assert D.verify("usps").where == "data home"
    with open(home / "usps" / "zip.test.gz", "ab") as fh:  # changes size and mtime: the memo must not hide it
        fh.write(b"x")
    assert D.fetch("usps", download=False) == mirror / "usps"


@needs_mirror
def test_hymenoptera_digest_detects_an_extra_file(
    mirror: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(mirror / "hymenoptera_data", home / "hymenoptera_data")
    assert D.verify("hymenoptera").where == "data home"
    monkeypatch.delenv("TLCOURSE_DATA_MIRROR")
    (home / "hymenoptera_data" / "val" / "bees" / "extra.jpg").write_bytes(b"\xff\xd8")
    problems = D.verify("hymenoptera").problems
    assert any("expected 398 files, found 399" in p for p in problems)


# ------------------------------------------------------------------------------------------------ loaders
@needs_mirror
def test_hymenoptera_splits(mirror: Path) -> None:
    train, val = D.load_hymenoptera("train", TF), D.load_hymenoptera("val", TF)
    assert (len(train), len(val)) == (244, 153)
    assert train.classes == ["ants", "bees"]
    assert Counter(train.targets) == {0: 123, 1: 121} and Counter(val.targets) == {0: 70, 1: 83}
    assert not any(p.endswith(".gif") for p, _ in train.samples)
    x, y = val[0]
    assert x.shape == (3, 32, 32) and isinstance(y, int)
    small = D.load_hymenoptera("train", TF, per_class=5)
    assert Counter(small.targets) == {0: 5, 1: 5} and len(small.samples) == 10


@needs_mirror
@pytest.mark.parametrize(
    ("name", "sizes", "classes"),
    [
        ("breastmnist", (546, 78, 156), ["malignant", "normal/benign"]),
        ("pneumoniamnist", (4708, 524, 624), ["normal", "pneumonia"]),
    ],
)
def test_medmnist_splits(mirror: Path, name: str, sizes: tuple[int, int, int], classes: list[str]) -> None:
    got = [D.load_medmnist(name, split, TF) for split in ("train", "val", "test")]
    assert tuple(len(ds) for ds in got) == sizes
    test = got[2]
    assert test.classes == classes and set(test.targets) == {0, 1}
    x, y = test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grey copied to three channels


@needs_mirror
def test_digits(mirror: Path) -> None:
    mnist = D.load_mnist_test(TF)
    assert len(mnist) == 10000 and mnist.classes == [str(d) for d in range(10)]
    assert Counter(mnist.targets)[1] == 1135 and mnist.images.shape == (10000, 28, 28)
    usps_train, usps_test = D.load_usps("train", TF), D.load_usps("test", TF)
    assert (len(usps_train), len(usps_test)) == (7291, 2007)
    assert Counter(usps_test.targets)[0] == 359 and usps_train.images.shape[1:] == (16, 16)
    assert usps_train.images.dtype == np.uint8 and usps_train.images.min() == 0 and usps_train.images.max() == 255
    for ds in (mnist, usps_test):
        x, y = ds[0]
        assert x.shape == (3, 32, 32) and isinstance(y, int) and 0 <= y <= 9
    assert usps_train.image(0).size == (16, 16) and usps_train.image(0).mode == "RGB"


@needs_mirror
def test_rt_polarity(mirror: Path) -> None:
    full = D.load_rt_polarity("all")
    assert len(full) == 10662 and Counter(full.targets) == {0: 5331, 1: 5331}
    assert full.classes == ["negative", "positive"]
    label_of = dict(zip(full.texts, full.targets, strict=True))
    assert label_of["simplistic , silly and tedious ."] == 0  # the first line of rt-polarity.neg
    assert label_of["the rock is destined to be the 21st century's new \" conan \" and that he's going to make a "
                    "splash even greater than arnold schwarzenegger , jean-claud van damme or steven segal ."] == 1
    assert any("é" in t for t in full.texts)  # latin-1 decoded
    train, test = D.load_rt_polarity("train"), D.load_rt_polarity("test")
    assert len(train) + len(test) == 10662 and abs(len(test) - 0.15 * 10662) < 2
    assert abs(np.mean(test.targets) - 0.5) < 0.01  # stratified
    assert D.load_rt_polarity("test").texts == test.texts  # fixed seed: same split
    assert D.load_rt_polarity("test", seed=1).texts != test.texts


@needs_mirror
@pytest.mark.parametrize("domain", sorted(D.AMAZON_DOMAINS))
def test_amazon_reviews(mirror: Path, domain: str) -> None:
    ds = D.load_amazon_reviews(domain)
    assert len(ds) == 2000 and Counter(ds.targets) == {0: 1000, 1: 1000}
    assert all(isinstance(t, str) and len(t) > 10 for t in ds.texts)
    joined = " ".join(ds.texts)
    assert "<review_text>" not in joined and "&quot;" not in joined
    assert not any("\n" in t or "  " in t for t in ds.texts)  # whitespace collapsed


@needs_mirror
def test_amazon_text_is_title_then_review(mirror: Path) -> None:
    ds = D.load_amazon_reviews("books")
    crichton = [y for t, y in zip(ds.texts, ds.targets, strict=True)
                if t.startswith("One of the best Crichton novels. Sphere by Michael Crichton")]
    assert crichton == [1]  # the title, then the review, in the positive file


@needs_mirror
def test_sst2(mirror: Path) -> None:
    train, dev = D.load_sst2("train"), D.load_sst2("dev")
    assert (len(train), len(dev)) == (67349, 872)
    assert Counter(dev.targets) == {1: 444, 0: 428}
    assert ("it 's a charming and often affecting journey .", 1) in zip(dev.texts, dev.targets, strict=True)


@needs_mirror
@pytest.mark.parametrize("load", [lambda: D.load_rt_polarity("train"), lambda: D.load_rt_polarity("all"),
                                  lambda: D.load_amazon_reviews("dvd"), lambda: D.load_hymenoptera("val"),
                                  lambda: D.load_hymenoptera("train", per_class=20),
                                  lambda: D.load_rt_polarity("train", limit=600)])
def test_a_prefix_is_a_fair_sample(mirror: Path, load) -> None:
    """The files are grouped by class; the loaded order is not, so ``ds[:k]`` holds every class (04's bug: the
    first 500 movie snippets were all negative)."""
    targets = np.asarray(load().targets)
    for k in (20, 100):
        share = np.mean(targets[:k] == targets.max())
        assert 0.2 < share < 0.8, f"the first {k} items are {share:.0%} of one class"


# ------------------------------------------------------------------------------------------------ subsets
def test_select_indices() -> None:
    targets = np.array([0] * 50 + [1] * 30 + [2] * 20)
    idx = D.select_indices(targets, per_class=7, seed=3)
    assert Counter(targets[idx].tolist()) == {0: 7, 1: 7, 2: 7}
    assert not np.array_equal(idx, D.select_indices(targets, per_class=7, seed=4))
    lim = D.select_indices(targets, limit=20, seed=0)
    assert Counter(targets[lim].tolist()) == {0: 10, 1: 6, 2: 4}  # stratified
    assert len(D.select_indices(targets, limit=1000)) == 100
    assert len(D.select_indices(targets, limit=2)) == 2  # fewer than classes: plain seeded sample
    every = D.select_indices(targets, seed=5)
    assert sorted(every.tolist()) == list(range(100)) and len(set(targets[every[:10]].tolist())) > 1
    assert np.array_equal(every, D.select_indices(targets, seed=5))  # seeded: the same order every time


@needs_mirror
def test_subsets_and_fingerprints(mirror: Path) -> None:
    a = D.load_medmnist("pneumoniamnist", "train", TF, per_class=8)
    assert len(a) == 16 and Counter(a.targets) == {0: 8, 1: 8}
    b = D.load_medmnist("pneumoniamnist", "train", TF, limit=40)
    assert len(b) == 40 and abs(np.mean(b.targets) - 0.742) < 0.05  # the train set is ~74 % pneumonia
    c = D.load_medmnist("pneumoniamnist", "val", TF, per_class=8)
    other_tf = transforms.Compose([transforms.Resize((48, 48)), transforms.ToTensor()])
    d = D.load_medmnist("pneumoniamnist", "train", other_tf, per_class=8)
    e = D.load_medmnist("pneumoniamnist", "train", TF, per_class=8, seed=1)
    prints = [ds.fingerprint for ds in (a, b, c, d, e)]
    assert len(set(prints)) == 5, prints
    assert D.load_medmnist("pneumoniamnist", "train", TF, per_class=8).fingerprint == a.fingerprint
    assert "pneumoniamnist" in a.fingerprint and "train" in a.fingerprint
    t1, t2 = D.load_sst2("dev", limit=50), D.load_sst2("dev", limit=50, seed=2)
    assert len(t1) == 50 and t1.fingerprint != t2.fingerprint
    assert t1.fingerprint == D.load_sst2("dev", limit=50).fingerprint
    assert len(D.load_hymenoptera("val", TF, limit=9)) == 9


@needs_mirror
def test_default_transform_uses_models_preprocess(mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from tlcourse.models import preprocess  # noqa: F401
    except ImportError as err:
        pytest.skip(f"tlcourse.models.preprocess not importable yet: {err}")
    monkeypatch.setenv("TLCOURSE_PROFILE", "grading")
    ds = D.load_medmnist("breastmnist", "val", limit=4)
    x, _ = ds[0]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 64, 64)
    assert D.load_medmnist("breastmnist", "val", limit=4, image_size=40)[0][0].shape == (3, 40, 40)


# ------------------------------------------------------------------------------------------------ download path
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        pass


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 serving a folder the test fills: (base URL, folder)."""
    root = tmp_path_factory.mktemp("www")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


FILES = {"a.txt": b"alpha\n", "sub/b.txt": b"beta\n", "c.txt": b"gamma\n", "blob.bin": bytes(range(256))}


def _publish(root: Path) -> None:
    """Write toy.zip (toyset/a.txt, toyset/sub/b.txt), toy.tar.gz (inner/c.txt) and blob.bin into root."""
    with zipfile.ZipFile(root / "toy.zip", "w") as zf:
        zf.writestr("toyset/a.txt", FILES["a.txt"])
        zf.writestr("toyset/sub/b.txt", FILES["sub/b.txt"])
        zf.writestr("README", b"not needed")
    with tarfile.open(root / "toy.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("inner/c.txt")
        info.size = len(FILES["c.txt"])
        tf.addfile(info, io.BytesIO(FILES["c.txt"]))
    (root / "blob.bin").write_bytes(FILES["blob.bin"])


def _toy_spec(base: str, *, bad: str | None = None) -> D.DatasetSpec:
    files = {
        "z/a.txt": _sha(FILES["a.txt"]),
        "z/sub/b.txt": _sha(FILES["sub/b.txt"]),
        "t/c.txt": _sha(FILES["c.txt"]),
        "blob.bin": _sha(FILES["blob.bin"]),
    }
    if bad is not None:
        files[bad] = "0" * 64
    return D.DatasetSpec(
        name="toy",
        title="Toy",
        folder="toy",
        downloads=(
            D.Download((f"{base}/toy.zip",), "zip", target="toy/z", member="toyset"),
            D.Download((f"{base}/toy.tar.gz",), "tar.gz", target="toy/t", member="inner"),
            D.Download((f"{base}/missing.bin", f"{base}/blob.bin"), "file", target="toy/blob.bin"),
        ),
        licence="test",
        citation="test",
        homepage=base,
        description="a test-only dataset",
        classes=("a", "b"),
        files=files,
    )


def test_download_extract_verify_and_install(home: Path, server: tuple[str, Path]) -> None:
    base, root = server
    _publish(root)
    spec = _toy_spec(base)
    with pytest.raises(D.DatasetUnavailableError):
        D.fetch(spec, download=False)
    out = D.fetch(spec, progress=False)
    assert out == home / "toy"
    for rel, content in {"z/a.txt": "a.txt", "z/sub/b.txt": "sub/b.txt", "t/c.txt": "c.txt"}.items():
        assert (out / rel).read_bytes() == FILES[content]
    assert (out / "blob.bin").read_bytes() == FILES["blob.bin"]  # second URL used after a 404 on the first
    assert sorted(p.name for p in home.iterdir()) == ["toy"]  # no .part, no temp folder
    assert D.verify(spec).where == "data home"
    shutil.rmtree(root)  # offline now: the data home copy is enough
    assert D.fetch(spec, download=False) == out


def test_download_replaces_a_corrupted_copy(home: Path, server: tuple[str, Path]) -> None:
    base, root = server
    _publish(root)
    (home / "toy" / "z").mkdir(parents=True)
    (home / "toy" / "z" / "a.txt").write_bytes(b"damaged")
    out = D.fetch(_toy_spec(base), progress=False)
    assert (out / "z" / "a.txt").read_bytes() == FILES["a.txt"]
    assert sorted(p.name for p in home.iterdir()) == ["toy"]


def test_download_folder_digest(home: Path, server: tuple[str, Path]) -> None:
    base, root = server
    _publish(root)
    lines = "".join(f"{rel} {_sha(FILES[rel])}\n" for rel in sorted(["a.txt", "sub/b.txt"]))
    spec = D.DatasetSpec(
        name="toyfolder", title="Toy folder", folder="toyfolder",
        downloads=(D.Download((f"{base}/toy.zip",), "zip", target="toyfolder", member="toyset"),),
        licence="test", citation="test", homepage=base, description="test", classes=("a", "b"),
        digest=_sha(lines.encode()), file_count=2,
    )
    out = D.fetch(spec, progress=False)
    assert D.folder_digest(out) == (spec.digest, 2)


def test_bad_checksum_raises_and_leaves_nothing(home: Path, server: tuple[str, Path]) -> None:
    base, root = server
    _publish(root)
    with pytest.raises(D.ChecksumError) as info:
        D.fetch(_toy_spec(base, bad="t/c.txt"), progress=False)
    message = str(info.value)
    assert "c.txt" in message and "0" * 64 in message and _sha(FILES["c.txt"]) in message
    assert list(home.iterdir()) == []  # no .part, no temp folder, no destination


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_pooch_checksum_mismatch_raises_and_leaves_nothing(
    home: Path, server: tuple[str, Path], scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pooch

    hashes: list[str | None] = []
    real_retrieve = pooch.retrieve

    def spy(url: str, known_hash: str | None, **kwargs: object) -> object:
        hashes.append(known_hash)
        return real_retrieve(url, known_hash, **kwargs)

    monkeypatch.setattr(pooch, "retrieve", spy)
    base, root = server
    _publish(root)
    url = f"{base}/blob.bin" if scheme == "http" else (root / "blob.bin").as_uri()
    spec = D.DatasetSpec(
        name="toyblob", title="Toy blob", folder="toyblob",
        downloads=(D.Download((url,), "file", target="toyblob/blob.bin"),),
        licence="test", citation="test", homepage=base, description="test", classes=("a", "b"),
        files={"blob.bin": "0" * 64},  # pooch.retrieve gets known_hash="sha256:000…" and must refuse the bytes
    )
    with pytest.raises(D.ChecksumError) as info:
        D.fetch(spec, progress=False)
    message = str(info.value)
    assert "0" * 64 in message and _sha(FILES["blob.bin"]) in message and "removed" in message
    assert hashes == ["sha256:" + "0" * 64]  # pooch checked the bytes (and refused them) before any unpacking
    assert list(home.iterdir()) == []  # the download was deleted: no temp file, no folder, no destination
    assert not D.verify(spec).ok


def test_corrupt_archive_raises_checksum_error(home: Path, server: tuple[str, Path]) -> None:
    base, root = server
    _publish(root)
    (root / "toy.zip").write_bytes(b"this is not a zip file")
    with pytest.raises(D.ChecksumError, match="corrupt"):
        D.fetch(_toy_spec(base), progress=False)
    assert list(home.iterdir()) == []


def test_no_server_gives_three_ways(home: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with pytest.raises(D.DatasetUnavailableError) as info:
        D.fetch(_toy_spec(base), progress=False)
    assert not isinstance(info.value, D.ChecksumError)
    message = str(info.value)
    assert "tlcourse data fetch toy" in message  # (1)
    assert f"{base}/toy.zip" in message and str(home / "toy") in message  # (2)
    assert "TLCOURSE_DATA_MIRROR" in message  # (3)
    assert list(home.iterdir()) == []


def test_make_loader_workers_only_where_they_help(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from torch.utils.data import Subset, TensorDataset

    from tlcourse.data import ArrayImageDataset, make_loader

    monkeypatch.setenv("TLCOURSE_PROFILE", "gpu")  # 4 workers, batch 64
    tensors = TensorDataset(torch.zeros(10, 3), torch.zeros(10))
    for data in (tensors, Subset(tensors, [0, 1, 2])):
        dl = make_loader(data, device="cpu")
        assert (dl.num_workers, dl.persistent_workers, dl.batch_size) == (0, False, 64)
    images = ArrayImageDataset(np.zeros((4, 8, 8), dtype=np.uint8), [0] * 4, ["a"], None, "zeros")
    dl = make_loader(images, batch_size=2, device="cpu")
    assert (dl.num_workers, dl.persistent_workers, dl.pin_memory) == (4, True, False)
    assert make_loader(images, num_workers=0).num_workers == 0


@needs_mirror
def test_medmnist_default_eval_transform_keeps_the_whole_thumbnail(mirror: Path) -> None:
    """Evaluation images are the whole 28-px thumbnail upsampled, not a centre crop of it (border kept)."""
    ds = D.load_medmnist("breastmnist", "test", image_size=56)
    x, _ = ds[0]
    assert x.shape == (3, 56, 56)
    from torchvision.transforms import functional as TF_

    raw = torch.from_numpy(ds.images[0]).float()[None, None] / 255
    whole = TF_.resize(raw, [56, 56], interpolation=TF_.InterpolationMode.BICUBIC, antialias=True)[0, 0]
    assert np.corrcoef(whole.flatten().numpy(), x[0].flatten().numpy())[0, 1] > 0.99, "the whole image, resized"

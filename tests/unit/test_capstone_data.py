"""The data the capstone (lesson 07) needs: Fashion-MNIST in the registry, resolved from the OS package's folder
as well as the data home and the mirror (a re-compressed copy verified by its content), and the loaders of a
learner's own data (an image folder, a CSV of texts)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlcourse import data as D
from tlcourse.data.loaders import _read_idx

FASHION = D.DATASETS["fashion_mnist"]
DEBIAN = Path(FASHION.system_copies[0].folder)
needs_debian = pytest.mark.skipif(not DEBIAN.is_dir(), reason=f"{DEBIAN} missing: apt-get install dataset-fashion-mnist")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data home, and no mirror."""
    monkeypatch.setenv("TLCOURSE_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TLCOURSE_DATA_MIRROR", raising=False)
    return tmp_path / "home"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _gz(data: bytes, mtime: int) -> bytes:
    return gzip.compress(data, mtime=mtime)


def _toy(folder: Path, payload: bytes = b"the same idx bytes") -> D.DatasetSpec:
    """A one-file dataset whose registry digest is of one gzip wrapper, with a system copy in ``folder``."""
    upstream = _gz(payload, mtime=1)
    return D.DatasetSpec(
        name="toy_gz", title="toy", folder="toy-gz", licence="MIT", citation="-", homepage="-", description="-",
        classes=("a", "b"), sizes={"all": 1},
        downloads=(D.Download(("https://example.org/x.gz",), "file", target="toy-gz/x.gz"),),
        files={"x.gz": _sha(upstream)}, unpacked={"x.gz": _sha(payload)},
        system_copies=(D.SystemCopy("toy-package", str(folder)),),
    )


# ------------------------------------------------------------------------------------------------ registry
def test_fashion_mnist_entry() -> None:
    assert FASHION.licence == "MIT" and "arXiv:1708.07747" in FASHION.citation
    assert "Xiao" in FASHION.citation and "Rasul" in FASHION.citation and "Vollgraf" in FASHION.citation
    assert FASHION.homepage == "https://github.com/zalandoresearch/fashion-mnist"
    names = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"}
    assert set(FASHION.files) == set(FASHION.unpacked) == names
    assert all(len(h) == 64 for h in [*FASHION.files.values(), *FASHION.unpacked.values()])
    for download in FASHION.downloads:  # the canonical raw file first; pooch checks the upstream gzip's sha256
        assert download.urls[0].startswith("https://github.com/zalandoresearch/fashion-mnist/raw/")
        assert FASHION.known_hash(download) == f"sha256:{FASHION.files[download.filename]}"
    assert FASHION.classes[0] == "T-shirt/top" and FASHION.classes[9] == "Ankle boot" and len(FASHION.classes) == 10
    assert FASHION.system_copies[0].package == "dataset-fashion-mnist"


# ------------------------------------------------------------------------------------------ resolution order
def test_a_recompressed_system_copy_verifies_by_its_content(home: Path, tmp_path: Path) -> None:
    system = tmp_path / "usr-share"
    system.mkdir()
    spec = _toy(system)
    (system / "x.gz").write_bytes(_gz(b"the same idx bytes", mtime=99))  # other gzip bytes, same data
    assert _sha((system / "x.gz").read_bytes()) != spec.files["x.gz"]
    report = D.verify(spec)
    assert report.ok and report.where == "system package" and report.path == system
    assert D.fetch(spec, download=False) == system
    assert not any(home.iterdir())  # read where it is, never copied


def test_changed_content_fails_and_names_the_package(home: Path, tmp_path: Path) -> None:
    system = tmp_path / "usr-share"
    system.mkdir()
    spec = _toy(system)
    (system / "x.gz").write_bytes(_gz(b"other idx bytes", mtime=1))
    report = D.verify(spec)
    assert not report.ok and any("[system package]" in p and "expected sha256" in p for p in report.problems)
    (system / "x.gz").write_bytes(b"not gzip at all")
    assert not D.verify(spec).ok
    missing = _toy(tmp_path / "not-installed")
    report = D.verify(missing)
    assert report.problems == (f"not found in the data home or {tmp_path / 'not-installed'} (toy-package)",)
    with pytest.raises(D.DatasetUnavailableError, match="apt-get install toy-package"):
        D.fetch(missing, download=False)


def test_the_data_home_and_the_mirror_come_first(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system, mirror = tmp_path / "usr-share", tmp_path / "mirror"
    spec = _toy(system)
    for folder in (system, mirror / "toy-gz", home / "toy-gz"):
        folder.mkdir(parents=True)
        (folder / "x.gz").write_bytes(_gz(b"the same idx bytes", mtime=1))
    monkeypatch.setenv("TLCOURSE_DATA_MIRROR", str(mirror))
    assert D.verify(spec).where == "data home"
    (home / "toy-gz" / "x.gz").unlink()
    assert D.verify(spec).where == "mirror"
    monkeypatch.delenv("TLCOURSE_DATA_MIRROR")
    assert D.verify(spec).where == "system package"


# ------------------------------------------------------------------------------------------- the real files
@needs_debian
def test_debian_files_are_fashion_mnist(home: Path) -> None:
    assert D.fetch("fashion_mnist", download=False) == DEBIAN
    report = D.verify("fashion_mnist")
    assert report.ok and report.where == "system package"
    for rel, unpacked in FASHION.unpacked.items():  # Debian re-compressed them: the gzip bytes differ, not the data
        assert hashlib.sha256(gzip.decompress((DEBIAN / rel).read_bytes())).hexdigest() == unpacked
    labels = _read_idx(DEBIAN / "t10k-labels-idx1-ubyte.gz", 2049)
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10


@needs_debian
def test_load_fashion_mnist(home: Path) -> None:
    raw = D.load_fashion_mnist("test", raw=True, classes=["Trouser", 8, "Sneaker"], per_class=4, seed=1)
    assert raw.classes == ["Trouser", "Bag", "Sneaker"] and len(raw) == 12
    assert Counter(raw.targets) == {0: 4, 1: 4, 2: 4}
    image, label = raw[0]
    assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (28, 28) and label in (0, 1, 2)
    assert raw.targets[:3] != sorted(raw.targets[:3]) or len(set(raw.targets[:6])) > 1  # shuffled, not grouped
    again = D.load_fashion_mnist("test", raw=True, classes=["Trouser", 8, "Sneaker"], per_class=4, seed=1)
    assert again.fingerprint == raw.fingerprint and np.array_equal(again.images, raw.images)
    shown = D.load_fashion_mnist("train", per_class=1, image_size=32)
    x, _ = shown[0]
    assert tuple(x.shape) == (3, 32, 32) and len(shown) == 10 and shown.classes == list(FASHION.classes)
    assert raw.fingerprint != D.load_fashion_mnist("test", raw=True, classes=[1, 8, 7], per_class=4).fingerprint
    with pytest.raises(ValueError, match="at least two different classes"):
        D.load_fashion_mnist("test", raw=True, classes=["Trouser", "Trouser"])
    with pytest.raises(ValueError, match="at least two different classes"):
        D.load_fashion_mnist("test", raw=True, classes=["Hat", "Bag"])


@needs_debian
def test_full_sizes(home: Path) -> None:
    for split, size in FASHION.sizes.items():
        ds = D.load_fashion_mnist(split, raw=True)
        assert len(ds) == size and ds.images.shape[1:] == (28, 28)


# ------------------------------------------------------------------------------------------ your own data
def _folder(root: Path, counts: dict[str, int], mode: str = "RGB") -> None:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new(mode, (20 + i, 10 + i)).save(root / name / f"{i}.png")


def test_load_image_folder_splits_one_folder(tmp_path: Path) -> None:
    _folder(tmp_path / "mine", {"cats": 8, "dogs": 12}, mode="L")
    train = D.load_image_folder(tmp_path / "mine", "train")
    val = D.load_image_folder(tmp_path / "mine", "val")
    assert train.classes == val.classes == ["cats", "dogs"]
    assert len(train) + len(val) == 20 and not {p for p, _ in train.samples} & {p for p, _ in val.samples}
    assert Counter(val.targets) == {0: 2, 1: 3}  # a quarter of each class
    image, label = val[0]
    assert isinstance(image, Image.Image) and image.mode == "L" and label in (0, 1)  # as on disk: no transform
    assert train.fingerprint != D.load_image_folder(tmp_path / "mine", "train", seed=1).fingerprint
    assert len(D.load_image_folder(tmp_path / "mine", "train", per_class=2)) == 4
    with pytest.raises(FileNotFoundError, match="one sub-folder"):
        D.load_image_folder(tmp_path / "nothing")
    with pytest.raises(ValueError, match="val_fraction"):
        D.load_image_folder(tmp_path / "mine", val_fraction=1.5)


def test_load_image_folder_with_train_and_val(tmp_path: Path) -> None:
    _folder(tmp_path / "mine" / "train", {"a": 3, "b": 2})
    _folder(tmp_path / "mine" / "val", {"a": 1, "b": 1})
    train, val = (D.load_image_folder(tmp_path / "mine", split) for split in ("train", "val"))
    assert (len(train), len(val)) == (5, 2) and train.classes == ["a", "b"]
    assert all(Path(p).parent.parent.name == "val" for p, _ in val.samples)


def test_load_text_csv(tmp_path: Path) -> None:
    path = tmp_path / "texts.csv"
    rows = [("great, really", "pos"), ("awful", "neg")] * 6 + [("", "pos"), ("no label", "")]
    path.write_text("review,verdict\n" + "".join(f'"{t}",{v}\n' for t, v in rows), encoding="utf-8")
    train = D.load_text_csv(path, "train", text_column="review", label_column="verdict")
    val = D.load_text_csv(path, "val", text_column="review", label_column="verdict")
    assert train.classes == ["neg", "pos"] and len(train) + len(val) == 12  # empty texts and labels dropped
    assert len(val) == 3 and sorted(Counter(val.targets).values()) == [1, 2]  # a quarter, stratified
    text, label = train[0]
    assert text in ("great, really", "awful") and label == train.classes.index("pos" if text.startswith("g") else "neg")
    with pytest.raises(ValueError, match="no column"):
        D.load_text_csv(path)
    one = tmp_path / "one.csv"
    one.write_text("text,label\na,x\nb,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="a classifier needs two"):
        D.load_text_csv(one)


def test_grey_array_dataset_keeps_its_mode() -> None:
    grey = D.ArrayImageDataset(np.zeros((1, 5, 5), np.uint8), [0], ["a"], None, "toy", mode="L")
    assert grey[0][0].mode == "L"
    assert dataclasses.is_dataclass(FASHION)  # the registry entry is plain data

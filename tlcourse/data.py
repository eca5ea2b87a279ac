"""Dataset registry: resolve → verify → load (DESIGN §3).

One registry, :data:`DATASETS`, names every dataset the course uses: where its files live (``folder``), the
files the loaders read with their sha256 (or, for an image folder, a digest of the sorted ``relpath sha256``
list), the canonical download URL(s), licence and citation.

:func:`fetch` resolves a dataset in three steps and returns the first *verified* copy:

1. the **data home** (``TLCOURSE_DATA_HOME``; default ``datasets/`` in the checkout);
2. a read-only **mirror** folder with the same layout (``TLCOURSE_DATA_MIRROR``), never written to;
3. a **download** from the canonical URL(s) with a progress bar to a ``.part`` file in the data home, extracted
   into a temporary folder next to the destination, verified, then renamed into place.

A checksum mismatch raises :class:`ChecksumError` and the bad file is removed; no network (or ``download=False``)
raises :class:`DatasetUnavailableError` naming the three ways to get the data.

The loaders (``load_hymenoptera``, ``load_medmnist``, ``load_mnist_test``, ``load_usps``, ``load_rt_polarity``,
``load_amazon_reviews``, ``load_sst2``) return ``torch.utils.data.Dataset`` objects with ``classes``, ``targets``
and a ``fingerprint`` string (dataset, split, chosen indices, transform) that feature caches key on.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchvision.datasets import ImageFolder
from tqdm.auto import tqdm

from tlcourse.config import profile

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from PIL import Image

__all__ = [
    "DATASETS",
    "EXTRACTORS",
    "AMAZON_DOMAINS",
    "Download",
    "DatasetSpec",
    "DatasetUnavailableError",
    "ChecksumError",
    "VerifyReport",
    "ArrayImageDataset",
    "ImageFolderSubset",
    "TextDataset",
    "data_home",
    "mirror_dir",
    "sha256_file",
    "folder_digest",
    "download_url",
    "fetch",
    "verify",
    "dataset_status",
    "select_indices",
    "make_loader",
    "load_hymenoptera",
    "load_medmnist",
    "load_mnist_test",
    "load_usps",
    "load_rt_polarity",
    "load_amazon_reviews",
    "load_sst2",
]


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------
class DatasetUnavailableError(RuntimeError):
    """A dataset is neither in the data home nor in the mirror, and could not be downloaded.

    Example:
        >>> issubclass(DatasetUnavailableError, RuntimeError)
        True
    """


class ChecksumError(DatasetUnavailableError):
    """A downloaded file's sha256 (or a folder's digest) differs from the registry's; the file was removed.

    Example:
        >>> str(ChecksumError("x.npz: expected sha256 aa…, got bb…"))
        'x.npz: expected sha256 aa…, got bb…'
    """


# ----------------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Download:
    """One canonical download of a dataset.

    ``urls`` are tried in order (the first is canonical, the others are mirrors of the same bytes). ``kind``
    picks the extractor in :data:`EXTRACTORS`. ``member`` is the path inside the archive that becomes ``target``
    (``""``: the archive's root; ignored for ``kind="file"``); ``target`` is relative to the data home.

    Example:
        >>> d = Download(("https://example.org/a.zip",), "zip", target="a", member="a")
        >>> d.filename
        'a.zip'
    """

    urls: tuple[str, ...]
    kind: str
    target: str
    member: str = ""

    @property
    def filename(self) -> str:
        """The file name at the end of the first URL (without a query string).

        Example:
            >>> Download(("https://h/x.npz?download=1",), "file", "m/x.npz").filename
            'x.npz'
        """
        return self.urls[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the course knows about one dataset.

    ``files`` maps paths relative to ``folder`` to their sha256: only the files the loaders read. An image folder
    is checked instead by ``digest`` (sha256 of the byte-sorted lines ``"<relpath> <sha256>\\n"`` of every file
    under ``folder`` except ``SOURCE.md``) and ``file_count``.

    Example:
        >>> spec = DATASETS["breastmnist"]
        >>> spec.folder, spec.classes
        ('medmnist', ('malignant', 'normal/benign'))
    """

    name: str
    title: str
    folder: str
    downloads: tuple[Download, ...]
    licence: str
    citation: str
    homepage: str
    description: str
    classes: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=dict)
    digest: str | None = None
    file_count: int | None = None
    sizes: Mapping[str, int] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        """Every canonical URL (first of each download).

        Example:
            >>> DATASETS["sst2"].urls
            ['https://dl.fbaipublicfiles.com/glue/data/SST-2.zip']
        """
        return [d.urls[0] for d in self.downloads]


_MEDMNIST_CITATION = (
    "Yang, Shi, Wei, Liu, Zhao, Ke, Pfister, Ni. MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D "
    "biomedical image classification. Scientific Data 10, 41 (2023)."
)
_ZENODO = "https://zenodo.org/records/10519652/files/{}?download=1"
_USPS_BASE = "https://hastie.su.domains/ElemStatLearn/datasets/"
_MNIST_FILES = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_AMAZON_FILES = {
    "sorted_data_acl/books/negative.review": "562c58de7f739c9af2d62377ea2253ff73e89f69c84a332088f341cdb0e09660",
    "sorted_data_acl/books/positive.review": "72c39d63dfd7edf77895de7c796f67e095f847f4b56bca0704aba3bbf57f23b9",
    "sorted_data_acl/dvd/negative.review": "de1b539d29dc7edfbabf0ca4b1bce4e296d486533f3730012e4b49e36e762fa3",
    "sorted_data_acl/dvd/positive.review": "fcf5207f79aa8af4910b5793c15fe90f25eb39501f9f4bdbd8f60a817224e28d",
    "sorted_data_acl/electronics/negative.review": "571287120d63e289753231804f33169b2ec4348ca6d24fa0d781a3a08e6376ff",
    "sorted_data_acl/electronics/positive.review": "98daefad1056ec8d98fe910bdb50ae282695b9c2b89c2bc1513b9d2203b38a11",
    "sorted_data_acl/kitchen_&_housewares/negative.review": (
        "0ad1fa1f4539b47933fcef01be674b1246d1dc01403197c1439004cbaf4b543e"
    ),
    "sorted_data_acl/kitchen_&_housewares/positive.review": (
        "90ebec2b5a6ac040e16836c32b8efbd92ce98804b916c6367f7ade3b8d536798"
    ),
}

#: The registry of datasets (DESIGN §3). One entry = files, checksums, download, licence, citation.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="hymenoptera",
            title="Hymenoptera (ants vs bees)",
            folder="hymenoptera_data",
            downloads=(
                Download(
                    ("https://download.pytorch.org/tutorial/hymenoptera_data.zip",),
                    "zip",
                    target="hymenoptera_data",
                    member="hymenoptera_data",
                ),
            ),
            digest="15d89271f257b89832a79a665d92fea577411e875ab6be14222a571af4b2b359",
            file_count=398,
            licence="none stated (ImageNet photos; teaching/research use only)",
            citation="S. Chilamkurthy, 'Transfer Learning for Computer Vision', PyTorch tutorials (2017).",
            homepage="https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html",
            description="Ant and bee photos from ImageNet: the PyTorch transfer-learning tutorial's little data set.",
            classes=("ants", "bees"),
            sizes={"train": 244, "val": 153},
        ),
        DatasetSpec(
            name="breastmnist",
            title="BreastMNIST (MedMNIST v2, 28 px)",
            folder="medmnist",
            downloads=(Download((_ZENODO.format("breastmnist.npz"),), "file", target="medmnist/breastmnist.npz"),),
            files={"breastmnist.npz": "3a22d2a4625e7dd8903f0f59030e81a3d0c222bece2e5e10927456cb50efdec1"},
            licence="CC BY 4.0",
            citation=_MEDMNIST_CITATION + " Source: Al-Dhabyani et al., Data in Brief 28 (2020).",
            homepage="https://medmnist.com/",
            description="Breast ultrasound images, 28x28 grey, malignant vs normal/benign.",
            classes=("malignant", "normal/benign"),
            sizes={"train": 546, "val": 78, "test": 156},
        ),
        DatasetSpec(
            name="pneumoniamnist",
            title="PneumoniaMNIST (MedMNIST v2, 28 px)",
            folder="medmnist",
            downloads=(
                Download((_ZENODO.format("pneumoniamnist.npz"),), "file", target="medmnist/pneumoniamnist.npz"),
            ),
            files={"pneumoniamnist.npz": "e1792d3f03751cb101e99f19a63b3c1941436c988665f47853417b05be250cd8"},
            licence="CC BY 4.0",
            citation=_MEDMNIST_CITATION + " Source: Kermany et al., Cell 172(5) (2018).",
            homepage="https://medmnist.com/",
            description="Paediatric chest X-rays, 28x28 grey, normal vs pneumonia.",
            classes=("normal", "pneumonia"),
            sizes={"train": 4708, "val": 524, "test": 624},
        ),
        DatasetSpec(
            name="rt_polarity",
            title="Sentence polarity v1.0 (Rotten Tomatoes)",
            folder="rt-polaritydata",
            downloads=(
                Download(
                    ("http://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz",),
                    "tar.gz",
                    target="rt-polaritydata",
                    member="rt-polaritydata",
                ),
            ),
            files={
                "rt-polarity.pos": "d79ef14009bbf87cd6be21f91c3ea1a3cbcb73b34dfb4231aef7bbcd7677abc4",
                "rt-polarity.neg": "4af43bf489620b498a0852c5a8c6a535155dec7985fdfea782b8f7756b957ccc",
            },
            licence="none stated (research use)",
            citation="B. Pang and L. Lee. Seeing stars: Exploiting class relationships for sentiment "
            "categorization with respect to rating scales. ACL 2005.",
            homepage="http://www.cs.cornell.edu/people/pabo/movie-review-data/",
            description="Movie-review snippets, 5,331 positive and 5,331 negative (latin-1 text).",
            classes=("negative", "positive"),
            sizes={"all": 10662},
        ),
        DatasetSpec(
            name="amazon_reviews",
            title="Multi-Domain Sentiment (Amazon: books, dvd, electronics, kitchen)",
            folder="amazon-multi-domain",
            downloads=(
                Download(
                    ("https://www.cs.jhu.edu/~mdredze/datasets/sentiment/domain_sentiment_data.tar.gz",),
                    "tar.gz",
                    target="amazon-multi-domain/sorted_data_acl",
                    member="sorted_data_acl",
                ),
            ),
            files=_AMAZON_FILES,
            licence="none stated (research use; review texts from Amazon.com)",
            citation="J. Blitzer, M. Dredze, F. Pereira. Biographies, Bollywood, Boom-boxes and Blenders: Domain "
            "Adaptation for Sentiment Classification. ACL 2007.",
            homepage="https://www.cs.jhu.edu/~mdredze/datasets/sentiment/",
            description="Amazon product reviews, 1,000 positive + 1,000 negative in each of 4 domains.",
            classes=("negative", "positive"),
            sizes={"books": 2000, "dvd": 2000, "electronics": 2000, "kitchen": 2000},
        ),
        DatasetSpec(
            name="sst2",
            title="SST-2 (GLUE)",
            folder="SST-2",
            downloads=(
                Download(("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",), "zip", "SST-2", member="SST-2"),
            ),
            files={
                "train.tsv": "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
                "dev.tsv": "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
            },
            licence="none stated (research use; GLUE redistributes under the original terms)",
            citation="R. Socher et al. Recursive Deep Models for Semantic Compositionality Over a Sentiment "
            "Treebank. EMNLP 2013. A. Wang et al. GLUE. ICLR 2019.",
            homepage="https://gluebenchmark.com/",
            description="Stanford Sentiment Treebank phrases, binary labels (GLUE version).",
            classes=("negative", "positive"),
            sizes={"train": 67349, "dev": 872},
        ),
        DatasetSpec(
            name="mnist_test",
            title="MNIST (test set)",
            folder="mnist",
            downloads=tuple(
                Download(
                    (
                        f"http://yann.lecun.com/exdb/mnist/{fname}",
                        f"https://ossci-datasets.s3.amazonaws.com/mnist/{fname}",
                    ),
                    "file",
                    target=f"mnist/{fname}",
                )
                for fname in _MNIST_FILES
            ),
            files=_MNIST_FILES,
            licence="none stated (commonly listed as CC BY-SA 3.0)",
            citation="Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document "
            "recognition. Proc. IEEE 86(11), 1998.",
            homepage="http://yann.lecun.com/exdb/mnist/",
            description="Handwritten digits, 28x28 grey; the 10,000-image test set only.",
            classes=tuple(str(d) for d in range(10)),
            sizes={"test": 10000},
        ),
        DatasetSpec(
            name="usps",
            title="USPS digits (ESL version)",
            folder="usps",
            downloads=tuple(
                Download((_USPS_BASE + fname,), "file", target=f"usps/{fname}")
                for fname in ("zip.train.gz", "zip.test.gz")
            ),
            files={
                "zip.train.gz": "66ebf231ab51f2cf6ac1a892d0f98ccffee1079d7a5db638c1f11f366046ca16",
                "zip.test.gz": "8dacc3c6e136af6c3488de9e5113a7daf140c8c2f1f0b61c54ee02f03f1a962f",
            },
            licence="none stated (research/teaching use)",
            citation="J. J. Hull. A database for handwritten text recognition research. IEEE TPAMI 16(5), 1994.",
            homepage="https://hastie.su.domains/ElemStatLearn/data.html",
            description="Zip-code digits, 16x16 grey in [-1, 1], from The Elements of Statistical Learning.",
            classes=tuple(str(d) for d in range(10)),
            sizes={"train": 7291, "test": 2007},
        ),
    )
}

#: Amazon domain name → folder under ``sorted_data_acl``.
AMAZON_DOMAINS: dict[str, str] = {
    "books": "books",
    "dvd": "dvd",
    "electronics": "electronics",
    "kitchen": "kitchen_&_housewares",
}


def _spec(name: str | DatasetSpec) -> DatasetSpec:
    if isinstance(name, DatasetSpec):
        return name
    if not isinstance(name, str):
        raise TypeError(f"dataset must be a name (str) or a DatasetSpec, got {type(name).__name__}")
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None


def _choose(value: str, choices: Sequence[str] | Mapping[str, Any], what: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {list(choices)}")
    return value


# ----------------------------------------------------------------------------------------------------------------
# Locations
# ----------------------------------------------------------------------------------------------------------------
def data_home() -> Path:
    """The writable data home: ``TLCOURSE_DATA_HOME``, else ``datasets/`` in the checkout (created if missing).

    Example:
        >>> data_home().is_dir()
        True
    """
    env = os.environ.get("TLCOURSE_DATA_HOME", "").strip()
    home = Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "datasets"
    home.mkdir(parents=True, exist_ok=True)
    return home


def mirror_dir() -> Path | None:
    """The read-only mirror folder named by ``TLCOURSE_DATA_MIRROR``, or ``None`` when unset.

    Example:
        >>> mirror_dir() is None or isinstance(mirror_dir(), Path)
        True
    """
    env = os.environ.get("TLCOURSE_DATA_MIRROR", "").strip()
    return Path(env).expanduser() if env else None


# ----------------------------------------------------------------------------------------------------------------
# Checksums and verification
# ----------------------------------------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
        >>> sha256_file(p)[:12]
        'ba7816bf8f01'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _folder_files(folder: Path) -> list[str]:
    """Files under ``folder`` (relative POSIX paths, byte-sorted), ``SOURCE.md`` at the top excluded."""
    rels = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted((r for r in rels if r != "SOURCE.md"), key=lambda r: r.encode("utf-8"))


def folder_digest(folder: str | os.PathLike[str]) -> tuple[str, int]:
    """Digest and count of an image folder: sha256 of the sorted ``"<relpath> <sha256>\\n"`` lines.

    The method of ``shared/data/hymenoptera_data/SOURCE.md`` (``SOURCE.md`` itself is excluded).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_bytes(b"abc")
        >>> folder_digest(d)[1]
        1
    """
    folder = Path(folder)
    rels = _folder_files(folder)
    text = "".join(f"{rel} {sha256_file(folder / rel)}\n" for rel in rels)
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), len(rels)


def _signature(spec: DatasetSpec, root: Path) -> tuple[Any, ...]:
    """Cheap stat signature of the files a verification reads (the memo key)."""
    if spec.digest is not None:
        paths = [root / rel for rel in _folder_files(root)] if root.is_dir() else []
    else:
        paths = [root / rel for rel in spec.files]
    sig: list[Any] = []
    for p in paths:
        try:
            st = p.stat()
            sig.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            sig.append((str(p), None, None))
    return tuple(sig)


_VERIFIED: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _problems(spec: DatasetSpec, root: Path, *, memo: bool = True) -> tuple[str, ...]:
    """What is wrong with the copy of ``spec`` under ``root`` (empty: verified). Memoised on path + mtimes."""
    if not root.is_dir():
        return (f"{root} does not exist",)
    key = (spec.name, spec.digest, tuple(sorted(spec.files.items())), str(root), _signature(spec, root))
    if memo and key in _VERIFIED:
        return _VERIFIED[key]
    problems: list[str] = []
    for rel, expected in spec.files.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        got = sha256_file(path)
        if got != expected:
            problems.append(f"{path}: expected sha256 {expected}, got {got}")
    if spec.digest is not None:
        got, count = folder_digest(root)
        if spec.file_count is not None and count != spec.file_count:
            problems.append(f"{root}: expected {spec.file_count} files, found {count}")
        if got != spec.digest:
            problems.append(f"{root}: expected folder digest {spec.digest}, got {got}")
    result = tuple(problems)
    if memo:
        _VERIFIED[key] = result
    return result


@dataclass(frozen=True)
class VerifyReport:
    """Where a dataset was found and whether it verified.

    ``where`` is ``"data home"``, ``"mirror"`` or ``None`` (not found); ``problems`` lists every failed check of
    every copy that was looked at (empty when ``ok``).

    Example:
        >>> r = VerifyReport("x", None, None, False, ("missing",))
        >>> r.ok
        False
    """

    name: str
    where: str | None
    path: Path | None
    ok: bool
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.ok:
            return f"{self.name}: ok ({self.where}: {self.path})"
        return f"{self.name}: NOT OK\n" + "\n".join(f"  - {p}" for p in self.problems)


def _candidates(spec: DatasetSpec) -> list[tuple[str, Path]]:
    places = [("data home", data_home() / spec.folder)]
    mirror = mirror_dir()
    if mirror is not None:
        places.append(("mirror", mirror / spec.folder))
    return places


def verify(name: str | DatasetSpec) -> VerifyReport:
    """Look for a verified copy in the data home, then the mirror; report where and what failed.

    Example:
        >>> verify("breastmnist").name
        'breastmnist'
    """
    spec = _spec(name)
    problems: list[str] = []
    for where, root in _candidates(spec):
        found = _problems(spec, root)
        if not found:
            return VerifyReport(spec.name, where, root, True, ())
        if root.exists():
            problems.extend(f"[{where}] {p}" for p in found)
    if not problems:
        problems.append("not found in the data home" + (" or the mirror" if mirror_dir() else ""))
    return VerifyReport(spec.name, None, None, False, tuple(problems))


def dataset_status() -> pd.DataFrame:
    """One row per registered dataset: name, title, where it was found, ok, licence, path.

    Example:
        >>> list(dataset_status().columns)[:4]
        ['name', 'title', 'found', 'ok']
    """
    import pandas as pd

    rows = []
    for spec in DATASETS.values():
        rep = verify(spec)
        rows.append(
            {
                "name": spec.name,
                "title": spec.title,
                "found": rep.where or "missing",
                "ok": rep.ok,
                "licence": spec.licence,
                "path": str(rep.path) if rep.path else "",
            }
        )
    return pd.DataFrame(rows, columns=["name", "title", "found", "ok", "licence", "path"])


# ----------------------------------------------------------------------------------------------------------------
# Download and extraction
# ----------------------------------------------------------------------------------------------------------------
def download_url(
    url: str, dest: str | os.PathLike[str], *, progress: bool = True, timeout: float = 30.0
) -> Path:
    """Download ``url`` to ``dest`` with a tqdm bar (``urllib.request``; raises ``OSError`` on failure).

    Example:
        >>> download_url("http://127.0.0.1:9/none", "/tmp/x.part", progress=False)  # doctest: +SKIP
    """
    dest = Path(dest)
    request = urllib.request.Request(url, headers={"User-Agent": "tlcourse-data/1.0"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1][:40], disable=not progress) as bar:
            while block := response.read(1 << 16):
                out.write(block)
                bar.update(len(block))
    return dest


def _safe_target(root: Path, member_name: str) -> Path:
    target = (root / member_name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ChecksumError(f"archive member {member_name!r} would extract outside {root}; refusing the archive")
    return target


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            _safe_target(dest, member)
        zf.extractall(dest)


def _extract_tar_gz(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:gz") as tf:
        for member in tf.getmembers():
            _safe_target(dest, member.name)
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            tf.extractall(dest)  # noqa: S202 - members checked above


def _extract_file(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    os.replace(archive, dest / "file")


#: Archive kind → extractor ``(archive, dest_folder) -> None``. A plain file lands as ``dest/file``.
EXTRACTORS: dict[str, Callable[[Path, Path], None]] = {
    "zip": _extract_zip,
    "tar.gz": _extract_tar_gz,
    "file": _extract_file,
}


def _unavailable_message(spec: DatasetSpec, reason: str) -> str:
    home = data_home()
    urls = "\n".join(f"       {d.urls[0]}  ({d.kind} → {home / d.target})" for d in spec.downloads)
    return (
        f"Dataset {spec.name!r} ({spec.title}) is not available: {reason}\n"
        f"Three ways to get it:\n"
        f"  (1) connect to the internet and rerun `tlcourse data fetch {spec.name}` "
        f"(or `tlcourse.data.fetch({spec.name!r})`);\n"
        f"  (2) download by hand and unpack into {home / spec.folder}:\n{urls}\n"
        f"  (3) point TLCOURSE_DATA_MIRROR at a folder holding {spec.folder}/ "
        f"(e.g. a course-provided copy), then rerun."
    )


def _rmtree_quiet(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _download_any(download: Download, dest: Path, progress: bool, downloader: Callable[..., Path]) -> None:
    errors = []
    for url in download.urls:
        try:
            downloader(url, dest, progress=progress)
            return
        except (OSError, urllib.error.URLError, ValueError) as err:  # URLError/HTTPError/timeout are OSErrors
            errors.append(f"{url}: {err}")
    raise OSError("; ".join(errors))


def _install(spec: DatasetSpec, progress: bool, downloader: Callable[..., Path]) -> Path:
    """Download every file of ``spec`` into a temp folder in the data home, verify, rename into place."""
    home = data_home()
    stage = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", suffix=".tmp", dir=home))
    parts: list[Path] = []
    try:
        for i, download in enumerate(spec.downloads):
            extractor = EXTRACTORS.get(download.kind)
            if extractor is None:
                raise ValueError(f"unknown archive kind {download.kind!r}; choose one of {sorted(EXTRACTORS)}")
            fd, part_name = tempfile.mkstemp(prefix=f".{download.filename}-", suffix=".part", dir=home)
            os.close(fd)
            part = Path(part_name)
            parts.append(part)
            try:
                _download_any(download, part, progress, downloader)
            except OSError as err:
                raise DatasetUnavailableError(_unavailable_message(spec, f"download failed ({err})")) from err
            unpacked = stage / f"_unpack{i}"
            try:
                extractor(part, unpacked)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
                raise ChecksumError(
                    f"{download.urls[0]}: the downloaded {download.kind} archive is corrupt ({err}); removed"
                ) from err
            part.unlink(missing_ok=True)
            source = unpacked / "file" if download.kind == "file" else unpacked / download.member
            if not source.exists():
                raise ChecksumError(
                    f"{download.urls[0]}: the archive has no {download.member!r}; "
                    f"found {sorted(p.name for p in unpacked.iterdir())}"
                )
            placed = stage / "tree" / download.target
            placed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, placed)
            _rmtree_quiet(unpacked)
        problems = _problems(spec, stage / "tree" / spec.folder, memo=False)
        if problems:
            raise ChecksumError(
                f"Dataset {spec.name!r}: downloaded files failed verification and were removed:\n"
                + "\n".join(f"  - {p}" for p in problems)
            )
        for i, download in enumerate(spec.downloads):  # rename into place; an older copy is moved aside
            final = home / download.target
            final.parent.mkdir(parents=True, exist_ok=True)
            old = None
            if final.exists() or final.is_symlink():
                old = stage / f"_old{i}"
                os.replace(final, old)
            os.replace(stage / "tree" / download.target, final)
            if old is not None:
                _rmtree_quiet(old)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
        _rmtree_quiet(stage)
    return home / spec.folder


def fetch(
    name: str | DatasetSpec,
    *,
    download: bool = True,
    progress: bool = True,
    downloader: Callable[..., Path] = download_url,
) -> Path:
    """Return the folder of a verified copy: data home, else mirror (read-only), else download.

    ``name`` may be a registered name or a :class:`DatasetSpec` (e.g. a test's). ``downloader(url, dest,
    progress=...)`` fetches one URL (default :func:`download_url`).

    Example:
        >>> fetch("breastmnist", download=False).name  # doctest: +SKIP
        'medmnist'
    """
    spec = _spec(name)
    report = verify(spec)
    if report.ok and report.path is not None:
        return report.path
    found = [p for p in report.problems if not p.startswith("not found")]
    reason = "no verified copy in the data home or the mirror"
    if found:
        reason += ". Problems found:\n" + "\n".join(f"    {p}" for p in found)
    if not download:
        raise DatasetUnavailableError(_unavailable_message(spec, reason + "\n(download=False)"))
    return _install(spec, progress, downloader)


# ----------------------------------------------------------------------------------------------------------------
# Subsets and fingerprints
# ----------------------------------------------------------------------------------------------------------------
def _in_memory(data: Any) -> bool:
    while isinstance(data, Subset):
        data = data.dataset
    return isinstance(data, TensorDataset) or bool(getattr(data, "in_memory", False))


def make_loader(
    data: Dataset,
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    device: torch.device | str | None = None,
    num_workers: int | None = None,
    **kwargs: Any,
) -> DataLoader:
    """A DataLoader with the profile's batch size and workers, set up for ``device`` (every tlcourse verb uses it).

    * workers: ``num_workers``, else the profile's — but none for data already in memory (a ``TensorDataset``, a
      ``Subset`` of one, or a dataset whose class sets ``in_memory = True``): there a worker process adds nothing but
      its start-up time, which is long in a notebook holding a CUDA context;
    * ``persistent_workers`` when there are workers: they start once per loader, not at every epoch;
    * ``pin_memory`` on CUDA. Other keyword arguments go to ``DataLoader``.

    Example:
        >>> dl = make_loader(TensorDataset(torch.zeros(10, 3)), batch_size=4)
        >>> len(dl), dl.num_workers
        (3, 0)
    """
    from tlcourse.config import profile

    prof = profile()
    workers = prof.num_workers if num_workers is None else int(num_workers)
    if num_workers is None and _in_memory(data):
        workers = 0
    dev = torch.device(device) if device is not None else None
    return DataLoader(data, batch_size=int(batch_size or prof.batch_size), shuffle=shuffle, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=dev is not None and dev.type == "cuda", **kwargs)


def select_indices(
    targets: Sequence[int] | np.ndarray, *, per_class: int | None = None, limit: int | None = None, seed: int = 0
) -> np.ndarray:
    """Indices of a seeded subset: ``per_class`` keeps the first k of each class after a seeded shuffle, then
    ``limit`` keeps a seeded stratified subset of n (all when n ≥ the size). Returned sorted.

    Example:
        >>> select_indices([0, 0, 0, 1, 1, 1], per_class=2).size
        4
    """
    targets = np.asarray(targets, dtype=np.int64)
    idx = np.arange(len(targets))
    for arg, value in (("per_class", per_class), ("limit", limit)):
        if value is not None and (not isinstance(value, int | np.integer) or value < 1):
            raise ValueError(f"{arg} must be a positive int or None, got {value!r}")
    if per_class is not None:
        order = np.random.default_rng(seed).permutation(len(targets))
        keep = [order[targets[order] == c][:per_class] for c in np.unique(targets)]
        idx = np.sort(np.concatenate(keep)) if keep else idx
    if limit is not None and limit < len(idx):
        from sklearn.model_selection import train_test_split

        try:
            idx, _ = train_test_split(idx, train_size=limit, stratify=targets[idx], random_state=seed)
        except ValueError:  # too few per class to stratify: plain seeded sample
            idx = np.random.default_rng(seed).choice(idx, size=limit, replace=False)
        idx = np.sort(idx)
    return idx


def _fingerprint(name: str, split: str, indices: np.ndarray, transform: Any) -> str:
    h = hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
    return f"{name}|{split}|n={len(indices)}|idx={h}|transform={transform!r}"


def _default_transform(transform: Any, train_aug: bool, image_size: int | None) -> Any:
    if transform is not None:
        return transform
    from tlcourse.models import preprocess  # lazy: models imports timm

    return preprocess("efficientnet_lite0", train=train_aug, image_size=image_size or profile().image_size)


# ----------------------------------------------------------------------------------------------------------------
# Dataset classes
# ----------------------------------------------------------------------------------------------------------------
class ArrayImageDataset(Dataset):
    """Images held as a uint8 array ``(N, H, W)``; items are ``(transform(PIL RGB image), int label)``.

    Grey images are converted to RGB PIL images so the same torchvision transforms serve every vision dataset.

    Example:
        >>> ds = ArrayImageDataset(np.zeros((2, 4, 4), np.uint8), [0, 1], ["a", "b"], lambda im: im.size, "toy")
        >>> ds[1], len(ds), ds.classes
        (((4, 4), 1), 2, ['a', 'b'])
    """

    def __init__(
        self,
        images: np.ndarray,
        targets: Sequence[int],
        classes: Sequence[str],
        transform: Callable[[Any], Any] | None,
        fingerprint: str,
    ) -> None:
        self.images = images
        self.targets: list[int] = [int(t) for t in targets]
        self.classes: list[str] = list(classes)
        self.transform = transform
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, i: int) -> Image.Image:
        """The raw item ``i`` as an RGB PIL image (no transform).

        Example:
            >>> ArrayImageDataset(np.zeros((1, 3, 3), np.uint8), [0], ["a"], None, "t").image(0).mode
            'RGB'
        """
        from PIL import Image

        return Image.fromarray(self.images[i]).convert("RGB")

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.image(i)
        return (self.transform(img) if self.transform is not None else img), self.targets[i]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint}, {len(self)} items, classes={self.classes})"


class TextDataset(Dataset):
    """``(text, label)`` pairs with ``classes``, ``targets`` and ``fingerprint``.

    Example:
        >>> ds = TextDataset(["good", "bad"], [1, 0], ["negative", "positive"], "toy")
        >>> ds[0], len(ds)
        (('good', 1), 2)
    """

    def __init__(self, texts: Sequence[str], targets: Sequence[int], classes: Sequence[str], fingerprint: str):
        self.texts: list[str] = list(texts)
        self.targets: list[int] = [int(t) for t in targets]
        self.classes: list[str] = list(classes)
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.texts[i], self.targets[i]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint}, {len(self)} items, classes={self.classes})"


class ImageFolderSubset(ImageFolder):
    """A torchvision ``ImageFolder`` restricted to a seeded subset (``per_class`` / ``limit``), with a
    ``fingerprint``.

    Example:
        >>> ds = ImageFolderSubset(fetch("hymenoptera") / "val", None, name="hymenoptera", split="val",
        ...                        limit=4)  # doctest: +SKIP
        >>> len(ds), ds.classes  # doctest: +SKIP
        (4, ['ants', 'bees'])
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[[Any], Any] | None,
        *,
        name: str,
        split: str,
        per_class: int | None = None,
        limit: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(str(root), transform=transform)
        indices = select_indices(self.targets, per_class=per_class, limit=limit, seed=seed)
        self.samples = [self.samples[i] for i in indices]
        self.imgs = self.samples
        self.targets = [t for _, t in self.samples]
        self.fingerprint = _fingerprint(name, split, indices, transform)


# ----------------------------------------------------------------------------------------------------------------
# Loaders: vision
# ----------------------------------------------------------------------------------------------------------------
_HYMENOPTERA_SPLITS = ("train", "val")
_MEDMNIST_SPLITS = ("train", "val", "test")
_USPS_FILES = {"train": "zip.train.gz", "test": "zip.test.gz"}


def load_hymenoptera(
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    *,
    train_aug: bool = False,
    image_size: int | None = None,
    per_class: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> ImageFolderSubset:
    """Ants vs bees as an ``ImageFolder`` (244 train / 153 val; ``imageNotFound.gif`` is skipped).

    ``transform=None`` uses ``tlcourse.models.preprocess("efficientnet_lite0", train=train_aug, image_size=...)``.

    Example:
        >>> ds = load_hymenoptera("val", transform=lambda im: im.size, per_class=2)  # doctest: +SKIP
        >>> ds.classes, len(ds)  # doctest: +SKIP
        (['ants', 'bees'], 4)
    """
    _choose(split, _HYMENOPTERA_SPLITS, "hymenoptera split")
    root = fetch("hymenoptera", download=download) / split
    transform = _default_transform(transform, train_aug, image_size)
    return ImageFolderSubset(
        root, transform, name="hymenoptera", split=split, per_class=per_class, limit=limit, seed=seed
    )


def load_medmnist(
    name: str = "breastmnist",
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    *,
    train_aug: bool = False,
    image_size: int | None = None,
    per_class: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> ArrayImageDataset:
    """BreastMNIST (546/78/156) or PneumoniaMNIST (4708/524/624), 28 px grey shown as RGB; official splits.

    Example:
        >>> ds = load_medmnist("breastmnist", "test", transform=lambda im: im.size)  # doctest: +SKIP
        >>> len(ds), ds.classes  # doctest: +SKIP
        (156, ['malignant', 'normal/benign'])
    """
    _choose(name, ("breastmnist", "pneumoniamnist"), "MedMNIST subset")
    _choose(split, _MEDMNIST_SPLITS, "MedMNIST split")
    spec = DATASETS[name]
    path = fetch(spec, download=download) / f"{name}.npz"
    with np.load(path) as npz:
        images = npz[f"{split}_images"]
        labels = npz[f"{split}_labels"].reshape(-1).astype(np.int64)
    return _array_dataset(spec, split, images, labels, transform, train_aug, image_size, per_class, limit, seed)


def _array_dataset(
    spec: DatasetSpec,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    transform: Any,
    train_aug: bool,
    image_size: int | None,
    per_class: int | None,
    limit: int | None,
    seed: int,
) -> ArrayImageDataset:
    transform = _default_transform(transform, train_aug, image_size)
    idx = select_indices(labels, per_class=per_class, limit=limit, seed=seed)
    return ArrayImageDataset(
        images[idx], labels[idx].tolist(), spec.classes, transform, _fingerprint(spec.name, split, idx, transform)
    )


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse a gzip IDX file (MNIST's format: big-endian magic, dims, uint8 data) with numpy."""
    raw = gzip.decompress(path.read_bytes())
    header = np.frombuffer(raw, dtype=">i4", count=1 + (magic & 0xFF))
    if int(header[0]) != magic:
        raise ValueError(f"{path}: not an IDX file with magic {magic} (got {int(header[0])})")
    dims = [int(d) for d in header[1:]]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 * len(header)).reshape(dims)


def load_mnist_test(
    transform: Callable[[Any], Any] | None = None,
    *,
    train_aug: bool = False,
    image_size: int | None = None,
    per_class: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> ArrayImageDataset:
    """The 10,000 MNIST test digits (28 px grey shown as RGB); IDX files parsed with numpy.

    Example:
        >>> ds = load_mnist_test(transform=lambda im: im.size, limit=10)  # doctest: +SKIP
        >>> len(ds), ds.classes[:3]  # doctest: +SKIP
        (10, ['0', '1', '2'])
    """
    spec = DATASETS["mnist_test"]
    root = fetch(spec, download=download)
    images = _read_idx(root / "t10k-images-idx3-ubyte.gz", 2051)
    labels = _read_idx(root / "t10k-labels-idx1-ubyte.gz", 2049).astype(np.int64)
    return _array_dataset(spec, "test", images, labels, transform, train_aug, image_size, per_class, limit, seed)


def load_usps(
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    *,
    train_aug: bool = False,
    image_size: int | None = None,
    per_class: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> ArrayImageDataset:
    """USPS digits, ESL version (7,291 train / 2,007 test), 16 px; values in [-1, 1] mapped to uint8 [0, 255].

    Example:
        >>> ds = load_usps("test", transform=lambda im: im.size)  # doctest: +SKIP
        >>> len(ds), ds[0][0]  # doctest: +SKIP
        (2007, (16, 16))
    """
    _choose(split, _USPS_FILES, "USPS split")
    spec = DATASETS["usps"]
    text = gzip.decompress((fetch(spec, download=download) / _USPS_FILES[split]).read_bytes()).decode("ascii")
    values = np.fromstring(text, dtype=np.float32, sep=" ").reshape(-1, 257)
    labels = values[:, 0].astype(np.int64)
    images = np.clip(np.rint((values[:, 1:] + 1.0) * 127.5), 0, 255).astype(np.uint8).reshape(-1, 16, 16)
    return _array_dataset(spec, split, images, labels, transform, train_aug, image_size, per_class, limit, seed)


# ----------------------------------------------------------------------------------------------------------------
# Loaders: text
# ----------------------------------------------------------------------------------------------------------------
def _text_dataset(
    spec: DatasetSpec, split: str, texts: list[str], labels: list[int], limit: int | None, seed: int
) -> TextDataset:
    idx = select_indices(labels, limit=limit, seed=seed)
    return TextDataset(
        [texts[i] for i in idx], [labels[i] for i in idx], spec.classes, _fingerprint(spec.name, split, idx, None)
    )


def load_rt_polarity(
    split: str = "all",
    *,
    test_fraction: float = 0.15,
    seed: int = 0,
    limit: int | None = None,
    download: bool = True,
) -> TextDataset:
    """Movie-review snippets (latin-1), label 1 = positive; ``all`` = 5,331 negative then 5,331 positive.

    ``train``/``test`` are a fixed seeded stratified split (``test_fraction``); ``limit`` a stratified subset.

    Example:
        >>> ds = load_rt_polarity("test", limit=8)  # doctest: +SKIP
        >>> len(ds), type(ds[0][0]).__name__  # doctest: +SKIP
        (8, 'str')
    """
    _choose(split, ("all", "train", "test"), "rt-polarity split")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    spec = DATASETS["rt_polarity"]
    root = fetch(spec, download=download)
    texts: list[str] = []
    labels: list[int] = []
    for label, fname in ((0, "rt-polarity.neg"), (1, "rt-polarity.pos")):
        # split on "\n" only: latin-1 byte 0x85 decodes to U+0085, which str.splitlines() would treat as a break
        lines = [ln.strip() for ln in (root / fname).read_text(encoding="latin-1").split("\n")]
        lines = [ln for ln in lines if ln]
        texts += lines
        labels += [label] * len(lines)
    if split != "all":
        from sklearn.model_selection import train_test_split

        train_idx, test_idx = train_test_split(
            np.arange(len(texts)), test_size=test_fraction, stratify=labels, random_state=seed
        )
        chosen = np.sort(train_idx if split == "train" else test_idx)
        texts = [texts[i] for i in chosen]
        labels = [labels[i] for i in chosen]
        split = f"{split}(test_fraction={test_fraction},seed={seed})"
    return _text_dataset(spec, split, texts, labels, limit, seed)


_REVIEW = re.compile(r"<review>(.*?)</review>", re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_REVIEW_TEXT = re.compile(r"<review_text>(.*?)</review_text>", re.S)


def _clean(text: str) -> str:
    # twice: a few reviews are double-escaped ("&amp;quot;")
    return " ".join(html.unescape(html.unescape(text)).split())


def _parse_reviews(path: Path) -> list[str]:
    """Texts of the ``<review>`` blocks of a pseudo-XML ``.review`` file: ``title. review_text``.

    A regex, not an XML parser: the files have no root element and raw ``&``/``<`` in places.
    """
    out = []
    for block in _REVIEW.findall(path.read_text(encoding="utf-8", errors="replace")):
        title = _TITLE.search(block)
        body = _REVIEW_TEXT.search(block)
        head = _clean(title.group(1)) if title else ""
        text = _clean(body.group(1)) if body else ""
        if head and text:  # "title. text", without doubling the title's own final punctuation
            head = head if head[-1] in ".!?" else head + "."
            out.append(f"{head} {text}")
        else:
            out.append(head or text)
    return out


def load_amazon_reviews(
    domain: str = "books", *, limit: int | None = None, seed: int = 0, download: bool = True
) -> TextDataset:
    """Amazon reviews of one domain (1,000 negative then 1,000 positive), text = ``title + ". " + review``.

    The ``.review`` files are not well-formed XML, so ``<review>`` blocks are cut out with a regex and HTML
    entities unescaped. Domains: ``books``, ``dvd``, ``electronics``, ``kitchen``.

    Example:
        >>> ds = load_amazon_reviews("dvd", limit=10)  # doctest: +SKIP
        >>> len(ds), ds.classes  # doctest: +SKIP
        (10, ['negative', 'positive'])
    """
    _choose(domain, AMAZON_DOMAINS, "Amazon domain")
    spec = DATASETS["amazon_reviews"]
    folder = fetch(spec, download=download) / "sorted_data_acl" / AMAZON_DOMAINS[domain]
    texts: list[str] = []
    labels: list[int] = []
    for label, fname in ((0, "negative.review"), (1, "positive.review")):
        reviews = _parse_reviews(folder / fname)
        texts += reviews
        labels += [label] * len(reviews)
    return _text_dataset(spec, domain, texts, labels, limit, seed)


def load_sst2(split: str = "train", *, limit: int | None = None, seed: int = 0, download: bool = True) -> TextDataset:
    """GLUE SST-2 (67,349 train / 872 dev sentences), label 1 = positive.

    Example:
        >>> ds = load_sst2("dev")  # doctest: +SKIP
        >>> len(ds)  # doctest: +SKIP
        872
    """
    _choose(split, ("train", "dev"), "SST-2 split")
    spec = DATASETS["sst2"]
    lines = (fetch(spec, download=download) / f"{split}.tsv").read_text(encoding="utf-8").split("\n")
    texts: list[str] = []
    labels: list[int] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        sentence, label = line.rsplit("\t", 1)
        texts.append(sentence.strip())
        labels.append(int(label))
    return _text_dataset(spec, split, texts, labels, limit, seed)

"""The dataset registry as data: one :class:`DatasetSpec` per dataset in :data:`DATASETS` (like MedMNIST's
``info.py``) — where its files live, the files the loaders read with their sha256 (or an image folder's digest),
the canonical download URL(s) and archive type, licence and citation. Nothing here touches the disk or the network;
:mod:`tlcourse.data.store` resolves, downloads and verifies what this module describes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from tlcourse._plumbing import choose

__all__ = ["DATASETS", "AMAZON_DOMAINS", "FASHION_MNIST_CLASSES", "Download", "DatasetSpec", "SystemCopy",
           "spec_of"]


@dataclass(frozen=True)
class Download:
    """One canonical download of a dataset.

    ``urls`` are tried in order (the first is canonical, the others are mirrors of the same bytes). ``kind``
    (``"zip"``, ``"tar.gz"`` or ``"file"``) picks the extractor in :data:`tlcourse.data.store.EXTRACTORS`.
    ``member`` is the path inside the archive that becomes ``target`` (``""``: the archive's root; ignored for
    ``kind="file"``); ``target`` is relative to the data home. ``sha256`` is the downloaded file's own digest when
    known (pooch checks it before unpacking); a plain file's defaults to its entry in :attr:`DatasetSpec.files`.

    Example:
        >>> d = Download(("https://example.org/a.zip",), "zip", target="a", member="a")
        >>> d.filename
        'a.zip'
    """

    urls: tuple[str, ...]
    kind: str
    target: str
    member: str = ""
    sha256: str | None = None

    @property
    def filename(self) -> str:
        """The file name at the end of the first URL (without a query string).

        Example:
            >>> Download(("https://h/x.npz?download=1",), "file", "m/x.npz").filename
            'x.npz'
        """
        return self.urls[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class SystemCopy:
    """A copy of a dataset that an operating-system package installs (read-only, like the mirror).

    ``folder`` holds the same files as the dataset's folder (``DatasetSpec.files``), verified the same way; a
    ``.gz`` file the package re-compressed verifies by its decompressed content (``DatasetSpec.unpacked``).

    Example:
        >>> copy = DATASETS["fashion_mnist"].system_copies[0]
        >>> copy.package, copy.folder
        ('dataset-fashion-mnist', '/usr/share/datasets/fashion-mnist')
    """

    package: str
    folder: str
    manager: str = "Debian/Ubuntu: apt-get install"


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the course knows about one dataset.

    ``files`` maps paths relative to ``folder`` to their sha256: only the files the loaders read. An image folder
    is checked instead by ``digest`` (sha256 of the byte-sorted lines ``"<relpath> <sha256>\\n"`` of every file
    under ``folder`` except ``SOURCE.md``) and ``file_count``. ``unpacked`` maps a ``.gz`` file of ``files`` to the
    sha256 of its *decompressed* bytes: a copy whose gzip wrapper differs (re-compressed by a packager, with another
    time stamp) but holds the same data verifies by it. ``system_copies`` are folders an OS package installs,
    looked in after the data home and the mirror.

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
    unpacked: Mapping[str, str] = field(default_factory=dict)
    system_copies: tuple[SystemCopy, ...] = ()

    @property
    def urls(self) -> list[str]:
        """Every canonical URL (first of each download).

        Example:
            >>> DATASETS["sst2"].urls
            ['https://dl.fbaipublicfiles.com/glue/data/SST-2.zip']
        """
        return [d.urls[0] for d in self.downloads]

    def known_hash(self, download: Download) -> str | None:
        """pooch's ``known_hash`` (``"sha256:<hex>"``) for the file ``download`` fetches, or ``None`` when only
        what it unpacks to is known (an archive: its members are verified after unpacking).

        Example:
            >>> usps = DATASETS["usps"]
            >>> usps.known_hash(usps.downloads[1])[:19], DATASETS["sst2"].known_hash(DATASETS["sst2"].downloads[0])
            ('sha256:8dacc3c6e136', None)
        """
        if download.sha256 is not None:
            return f"sha256:{download.sha256}"
        if download.kind != "file":
            return None
        target, folder = PurePosixPath(download.target), PurePosixPath(self.folder)
        if not target.is_relative_to(folder) or target == folder:
            return None
        expected = self.files.get(target.relative_to(folder).as_posix())
        return f"sha256:{expected}" if expected else None


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

_FASHION_RAW = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/{}"
_FASHION_S3 = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{}"
#: the upstream gzip files (what a download fetches): sha256 of the files md5-checked against Zalando's README
_FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
#: their decompressed IDX bytes: Debian's dataset-fashion-mnist re-compresses the same data (other gzip bytes)
_FASHION_UNPACKED = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: Fashion-MNIST's labels 0-9, in order (the upstream README's table)
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")

#: The registry of datasets (ARCHITECTURE.md §6). One entry = files, checksums, download, licence, citation.
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
        DatasetSpec(
            name="fashion_mnist",
            title="Fashion-MNIST",
            folder="fashion-mnist",
            downloads=tuple(
                Download((_FASHION_RAW.format(fname), _FASHION_S3.format(fname)), "file",
                         target=f"fashion-mnist/{fname}")
                for fname in _FASHION_FILES
            ),
            files=_FASHION_FILES,
            unpacked=_FASHION_UNPACKED,
            system_copies=(SystemCopy("dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist"),),
            licence="MIT",
            citation="H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine "
            "Learning Algorithms. arXiv:1708.07747 (2017).",
            homepage="https://github.com/zalandoresearch/fashion-mnist",
            description="Zalando's article images, 28x28 grey, 10 classes of clothes, shoes and bags.",
            classes=FASHION_MNIST_CLASSES,
            sizes={"train": 60000, "test": 10000},
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


def spec_of(name: str | DatasetSpec) -> DatasetSpec:
    """The registry entry named ``name`` (a :class:`DatasetSpec` is returned as it is, e.g. a test's own).

    Example:
        >>> spec_of("usps").folder
        'usps'
    """
    if isinstance(name, DatasetSpec):
        return name
    if not isinstance(name, str):
        raise TypeError(f"dataset must be a name (str) or a DatasetSpec, got {type(name).__name__}")
    return choose(DATASETS, name, "dataset")

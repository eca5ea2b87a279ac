"""What a training run did, and when to stop one: :class:`History` and :class:`EarlyStopping`.

Every training verb of the package (``train.fit``, ``train.fine_tune``, ``adapt.fit_dann`` …) returns a
``History``: one record per epoch, the best epoch, and the exact hyper-parameters, serialisable to JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["History", "EarlyStopping"]


# --------------------------------------------------------------------------------------------------- History
@dataclass
class History:
    """What a training run did: one record per epoch, the best epoch, and the exact hyper-parameters.

    Each record holds ``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>`` per metric, ``lr`` (first
    parameter group, at the end of the epoch) and ``seconds``; runs made of phases (``fine_tune``) add ``phase``.

    Example:
        >>> h = History(records=[{"epoch": 1, "train_loss": 0.7}, {"epoch": 2, "train_loss": 0.5}], best_epoch=2)
        >>> len(h), h.best("train_loss")
        (2, 0.5)
        >>> History.from_json(h.to_json()) == h
        True
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The records, epoch by epoch (so ``pandas.DataFrame(history)`` works too)."""
        return iter(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One epoch's record: ``history[-1]["val_accuracy"]``."""
        return self.records[index]

    def __repr__(self) -> str:
        n = len(self.records)
        head = f"History({n} epoch{'s' if n != 1 else ''}"
        if self.best_epoch is not None:
            head += f", best epoch {self.best_epoch}"
        if self.stopped_early:
            head += ", stopped early"
        head += ")"
        if not self.records:
            return head
        rows = []
        for rec in self.records:
            cells = []
            for key, value in rec.items():
                if isinstance(value, float):
                    cells.append(f"{key}={value:.4g}")
                elif isinstance(value, int | str):
                    cells.append(f"{key}={value}")
            rows.append("  " + "  ".join(cells))
        return head + "\n" + "\n".join(rows)

    def to_frame(self) -> Any:
        """The records as a pandas DataFrame, one row per epoch.

        Example:
            >>> History(records=[{"epoch": 1, "train_loss": 0.7}]).to_frame().columns.tolist()
            ['epoch', 'train_loss']
        """
        import pandas as pd

        return pd.DataFrame.from_records(self.records)

    def to_json(self) -> str:
        """Serialise to a JSON string (``from_json`` gives back an equal History).

        Example:
            >>> History(best_epoch=1).to_json().startswith("{")
            True
        """
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> History:
        """Rebuild a History from ``to_json`` output.

        Example:
            >>> History.from_json('{"records": [], "best_epoch": null, "stopped_early": false, "meta": {}}')
            History(0 epochs)
        """
        data = json.loads(text)
        missing = {"records", "best_epoch", "stopped_early", "meta"} - set(data)
        if missing:
            raise ValueError(f"not a History JSON: missing keys {sorted(missing)}")
        return cls(
            records=list(data["records"]),
            best_epoch=data["best_epoch"],
            stopped_early=bool(data["stopped_early"]),
            meta=dict(data["meta"]),
        )

    def save(self, path: str | Path) -> Path:
        """Write the History as JSON to ``path`` (parent folders are created); returns the path.

        Example:
            >>> import tempfile, os
            >>> p = History(best_epoch=1).save(os.path.join(tempfile.mkdtemp(), "h.json"))
            >>> History.load(p).best_epoch
            1
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a History written by ``save``.

        Example:
            >>> import tempfile, os
            >>> History.load(History().save(os.path.join(tempfile.mkdtemp(), "h.json")))
            History(0 epochs)
        """
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def best(self, metric: str = "val_loss", mode: str | None = None) -> float:
        """Best value of a recorded metric (lowest for losses, highest otherwise unless ``mode`` says).

        Example:
            >>> History(records=[{"val_accuracy": 0.6}, {"val_accuracy": 0.8}]).best("val_accuracy")
            0.8
        """
        values = [r[metric] for r in self.records if metric in r and is_number(r[metric])]
        if not values:
            cols = sorted({k for r in self.records for k in r})
            raise ValueError(f"metric {metric!r} is not in this History; recorded columns: {cols}")
        mode = mode or _infer_mode(metric)
        finite = [v for v in values if not math.isnan(v)] or values
        return float(min(finite) if mode == "min" else max(finite))

    def plot(self, **kwargs: Any) -> Any:
        """Plot the learning curves with ``tlcourse.viz.plot_history``.

        Example:
            >>> History(records=[{"epoch": 1, "train_loss": 0.7}]).plot()  # doctest: +SKIP
        """
        from tlcourse.viz import plot_history

        return plot_history(self, **kwargs)

    @classmethod
    def concat(cls, parts: Sequence[tuple[str, History]], meta: dict[str, Any] | None = None) -> History:
        """Join phase histories into one: epochs renumbered, a ``phase`` key in each record.

        ``best_epoch`` comes from the last phase (the weights the model ends with); ``stopped_early`` is true
        when any phase stopped early.

        Example:
            >>> a = History(records=[{"epoch": 1, "train_loss": 0.9}], best_epoch=1)
            >>> b = History(records=[{"epoch": 1, "train_loss": 0.5}], best_epoch=1)
            >>> h = History.concat([("frozen", a), ("unfrozen", b)])
            >>> [r["epoch"] for r in h.records], [r["phase"] for r in h.records], h.best_epoch
            ([1, 2], ['frozen', 'unfrozen'], 2)
        """
        records: list[dict[str, Any]] = []
        best_epoch = None
        for phase, part in parts:
            offset = len(records)
            for rec in part.records:
                new = dict(rec)
                new["epoch"] = offset + int(rec.get("epoch", len(records) - offset + 1))
                new["phase"] = phase
                records.append(new)
            if part.best_epoch is not None:
                best_epoch = offset + part.best_epoch
        full_meta = dict(meta or {})
        full_meta["phases"] = [{"phase": phase, **part.meta} for phase, part in parts]
        return cls(
            records=records,
            best_epoch=best_epoch,
            stopped_early=any(part.stopped_early for _, part in parts),
            meta=jsonable(full_meta),
        )


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _infer_mode(metric: str) -> str:
    """'min' for losses and errors, 'max' for scores."""
    name = metric.lower()
    return "min" if ("loss" in name or name.endswith("error")) else "max"


def jsonable(obj: Any) -> Any:
    """Normalise to what JSON gives back (lists for tuples, str for odd objects) so round trips are exact."""
    return json.loads(json.dumps(obj, default=str))


# --------------------------------------------------------------------------------------------- early stopping
@dataclass
class EarlyStopping:
    """Stop when ``metric`` has not improved for ``patience`` epochs; optionally restore the best weights.

    ``mode`` is inferred from the name (``*loss*`` → ``"min"``, else ``"max"``). A bare metric name such as
    ``"accuracy"`` means its validation value, ``"val_accuracy"``.

    Example:
        >>> EarlyStopping("val_accuracy", patience=2).mode
        'max'
        >>> EarlyStopping("accuracy").metric
        'val_accuracy'
    """

    metric: str = "val_loss"
    patience: int = 3
    mode: str | None = None
    restore_best: bool = True
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if not self.metric.startswith(("val_", "train_")):
            self.metric = f"val_{self.metric}"
        if self.mode is None:
            self.mode = _infer_mode(self.metric)
        if self.mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience < 1:
            raise ValueError(f"EarlyStopping patience must be >= 1, got {self.patience}")

    def improved(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta``.

        Example:
            >>> EarlyStopping("val_loss").improved(0.4, 0.5)
            True
        """
        if value is None or math.isnan(value):
            return False
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta

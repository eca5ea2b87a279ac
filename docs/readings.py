"""The figure of the reading page ``docs/pages/history.md``: transfer learning's milestones on a time line.

``python docs/readings.py`` redraws ``docs/pages/img/history-timeline.png`` from :data:`TIMELINE` (the page's
table lists the same years; ``tests/lessons/test_coursemap.py`` holds the two together).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
FIGURE = DOCS / "pages" / "img" / "history-timeline.png"

#: (year, short label) of each milestone in the page's table
TIMELINE: list[tuple[int, str]] = [
    (1976, "Bozinovski & Fulgosi:\ntransfer between networks"), (1993, "Pratt: start from\ntrained weights"),
    (1997, "Caruana:\nmulti-task learning"), (2010, "Pan & Yang:\nthe survey"), (2012, "AlexNet wins\nImageNet"),
    (2014, "DeCAF:\nCNN features\noff the shelf"), (2015, "DANN: domain\nadaptation"),
    (2016, "Ng at\nNIPS"), (2018, "ULMFiT"), (2019, "BERT"), (2022, "LoRA"),
]


def draw(path: Path = FIGURE) -> Path:
    """Draw the time line into ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    sys.path.insert(0, str(DOCS.parent))
    from tlcourse.viz import plot_timeline

    fig = plot_timeline(TIMELINE, width=14.0, title="Transfer learning, from the first study to parameter-efficient fine-tuning")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return path


if __name__ == "__main__":
    print(draw())

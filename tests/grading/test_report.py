"""`tlcourse report` on a synthetic graded batch of the warm-up: no notebook runs.

Six students: two honest, distinct solutions; a verbatim copy of the worked solution (with the model answer pasted);
two near-identical copies of each other (names renamed, comments changed; the same written answer); an untouched
stub, whose id looks like a spreadsheet formula. The gradebook and the autograded notebooks are written directly.
"""

from __future__ import annotations

import copy
import csv
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from PIL import Image
from support.course import make_course_root

from tlcourse.grading.cli import main
from tlcourse.grading.course import course_dir, load_nbgrader_config, open_gradebook
from tlcourse.grading.report import SOLUTION, md_text

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's add_submission
REPO = Path(__file__).resolve().parents[2]
WARMUP = "00_warmup"
TESTS = ("ex1_replace_head_tests", "ex2_freeze_body_tests", "ex3_unfreeze_top_tests")
HONEST_A, HONEST_B = "honest_a", "<img src=x onerror=alert(1)>"  # an id with HTML: never raw in report.md
COPYCAT, PAIR_C, PAIR_D, STUB = "copycat", "pair_c", "pair_d", "=SUM(1+1)"
EVIL_ENAME = "Evil<script>alert(1)</script>"

HEADERS = {
    "ex1_replace_head": 'def make_classifier(num_classes: int) -> nn.Module:\n'
                        '    """EfficientNet-Lite0 with ImageNet weights and a fresh head of `num_classes` outputs."""\n',
    "ex2_freeze_body": 'def freeze_body(model: nn.Module) -> int:\n'
                       '    """Freeze everything but the head; return the number of trainable parameters."""\n',
    "ex3_unfreeze_top": 'def unfreeze_top(model: nn.Module, k: int) -> list[str]:\n'
                        '    """Train only the last `k` layer groups; return their names."""\n',
}
BODIES: dict[str, dict[str, str]] = {
    HONEST_A: {
        "ex1_replace_head": '    backbone = load_backbone("efficientnet_lite0", pretrained=True)\n'
                            '    new_model = replace_head(backbone, num_classes)\n'
                            '    print("built a head with", num_classes, "classes")\n    return new_model',
        "ex2_freeze_body": '    for name, param in model.named_parameters():\n'
                           '        param.requires_grad = name.startswith("classifier.")\n'
                           '    return sum(p.numel() for p in model.parameters() if p.requires_grad)',
        "ex3_unfreeze_top": '    groups = layer_groups(model)\n    for i, group in enumerate(groups):\n'
                            '        for p in group.parameters():\n            p.requires_grad = i >= len(groups) - k\n'
                            '    return [g.name for g in groups[-k:]]',
    },
    HONEST_B: {
        "ex1_replace_head": '    if num_classes < 1:\n        raise ValueError("need at least one class")\n'
                            '    return build_classifier("efficientnet_lite0", num_classes=num_classes)',
        "ex2_freeze_body": '    freeze(model)\n    total = 0\n    for p in model.classifier.parameters():\n'
                           '        p.requires_grad_(True)\n        total += p.numel()\n    return total',
        "ex3_unfreeze_top": '    freeze(model)\n    chosen = layer_groups(model)[len(layer_groups(model)) - k:]\n'
                            '    names = []\n    while chosen:\n        g = chosen.pop(0)\n'
                            '        g.parameters()[0].requires_grad_(True)\n        names.append(g.name)\n'
                            '    return names',
    },
    PAIR_C: {
        "ex1_replace_head": '    net = load_backbone("efficientnet_lite0", pretrained=True)\n'
                            '    net = replace_head(net, num_classes)  # swap the head\n'
                            '    assert net.classifier.out_features == num_classes\n    return net',
        "ex2_freeze_body": '    freeze(model)\n    head_params = list(model.classifier.parameters())\n'
                           '    for w in head_params:\n        w.requires_grad = True\n'
                           '    return int(sum(w.numel() for w in head_params))',
        "ex3_unfreeze_top": '    freeze(model)\n    all_groups = layer_groups(model)\n'
                            '    picked = all_groups[-k:] if k > 0 else []\n    for grp in picked:\n'
                            '        for w in grp.parameters():\n            w.requires_grad = True\n'
                            '    return [grp.name for grp in picked]',
    },
}
#: pair_d: pair_c with every name renamed, comments and blank lines changed
RENAMES = {"net": "m", "head_params": "hp", "all_groups": "gs", "picked": "sel", "grp": "g", "w": "t",
           "  # swap the head": "", "    freeze(model)\n": "    freeze(model)  # all frozen\n\n"}
WRITTEN = {
    HONEST_A: "Freezing the body first means only the small random head is trained at the start, so its large early "
              "gradients never reach the pretrained layers. After the head has converged we unfreeze the last "
              "blocks with a low learning rate so that the X-ray specific features can adapt slowly.",
    HONEST_B: "If everything trained from step one, the random head would send noisy gradients into the backbone and "
              "destroy what it learned on ImageNet. Training the head alone is cheap and hard to overfit with 200 "
              "images; later the upper layers are fine-tuned gently because chest X-rays look nothing like ImageNet.",
    PAIR_C: "We freeze first so the random head does not damage the pretrained weights with big gradients. Then we "
            "unfreeze the top layers with a small learning rate, so they adapt <script>alert(1)</script> without "
            "forgetting.",
}
#: the synthetic gradebook: student -> test -> (points, error output or None)
ASSERT_K3 = ("AssertionError", "k=3 should train the last three groups", [])
BARE_ASSERT = ("AssertionError", "", ["\x1b[0;31mAssertionError\x1b[0m Traceback",
                                      "Cell In[12], line 4\n----> 4 assert names == ['blocks.6', 'conv_head', 'head']"])
NOT_IMPL = ("NotImplementedError", "", [])
RESULTS: dict[str, dict[str, tuple[float, tuple | None]]] = {
    HONEST_A: {"ex1_replace_head_tests": (2, None), "ex2_freeze_body_tests": (0, (EVIL_ENAME, "<b>x</b>", [])),
               "ex3_unfreeze_top_tests": (2, None)},
    HONEST_B: {"ex1_replace_head_tests": (2, None), "ex2_freeze_body_tests": (2, None),
               "ex3_unfreeze_top_tests": (0, ASSERT_K3)},
    COPYCAT: {t: (2, None) for t in TESTS},
    PAIR_C: {"ex1_replace_head_tests": (2, None), "ex2_freeze_body_tests": (2, None),
             "ex3_unfreeze_top_tests": (0, ASSERT_K3)},
    PAIR_D: {"ex1_replace_head_tests": (2, None), "ex2_freeze_body_tests": (2, None),
             "ex3_unfreeze_top_tests": (0, BARE_ASSERT)},
    STUB: {t: (0, NOT_IMPL) for t in TESTS},
}


def _gid(cell: Any) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _sources() -> tuple[Any, Any]:
    read = lambda folder: nbformat.read(REPO / folder / WARMUP / f"{WARMUP}.ipynb", as_version=4)  # noqa: E731
    return read("solutions"), read("lessons")


def _answers(student: str, source: Any) -> dict[str, str]:
    """The student's answer cells: grade id -> source (nothing for the untouched stub)."""
    solution = {_gid(c): re.sub(r"[ \t]*### (BEGIN|END) SOLUTION\n", "", c.source) for c in source.cells
                if c.metadata.get("nbgrader", {}).get("solution")}
    if student == COPYCAT:
        return solution
    if student == STUB:
        return {}
    bodies = BODIES[PAIR_C] if student == PAIR_D else BODIES[student]
    cells = {g: HEADERS[g] + body for g, body in bodies.items()}
    if student == PAIR_D:
        for old, new in RENAMES.items():
            cells = {g: re.sub(rf"\b{re.escape(old)}\b" if old.isidentifier() else re.escape(old), new, s)
                     for g, s in cells.items()}
    cells["ex4_why_freeze_first"] = WRITTEN[PAIR_C if student == PAIR_D else student]
    return cells


def _autograded(student: str, source: Any, released: Any) -> Any:
    nb = copy.deepcopy(released)
    answers = _answers(student, source)
    for cell in nb.cells:
        gid = _gid(cell)
        if gid in answers:
            cell.source = answers[gid]
        if gid in RESULTS[student] and RESULTS[student][gid][1] is not None:
            ename, evalue, tb = RESULTS[student][gid][1]
            cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=tb)]
    return nb


def _fill_gradebook(root: Path) -> None:
    coursedir = course_dir(load_nbgrader_config(root))
    with open_gradebook(coursedir) as gb:
        gb.update_or_create_assignment(WARMUP)
        gb.update_or_create_notebook(WARMUP, WARMUP)
        for test in TESTS:
            gb.update_or_create_grade_cell(test, WARMUP, WARMUP, max_score=2, cell_type="code")
        gb.update_or_create_grade_cell("ex4_why_freeze_first", WARMUP, WARMUP, max_score=2, cell_type="markdown")
        for student, results in RESULTS.items():
            gb.add_student(student)
            gb.add_submission(WARMUP, student)
            for test, (score, _) in results.items():
                gb.find_grade(test, WARMUP, WARMUP, student).auto_score = score
            gb.db.commit()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report folder of the synthetic batch, written by the CLI."""
    root = make_course_root(tmp_path_factory.mktemp("report") / "root")
    _fill_gradebook(root)
    source, released = _sources()
    for student in RESULTS:
        path = root / "course" / "autograded" / student / WARMUP / f"{WARMUP}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(_autograded(student, source, released), path)
    out = root / "out"
    assert main(["report", "--assignment", WARMUP, "--root", str(root), "--out", str(out)]) == 0
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _flags(report: Path) -> set[tuple[str, frozenset[str]]]:
    return {(r["kind"], frozenset((r["student_a"], r["student_b"]))) for r in _rows(report / "similarity-flags.csv")}


def test_copies_are_flagged(report: Path) -> None:
    flags = _flags(report)
    for kind in ("code", "written"):
        assert (kind, frozenset((PAIR_C, PAIR_D))) in flags, f"the renamed {kind} copy is not flagged"
        assert (kind, frozenset((COPYCAT, SOLUTION))) in flags, f"the {kind} copy of the worked solution is not flagged"
    rows = {frozenset((r["student_a"], r["student_b"])): r for r in _rows(report / "similarity-flags.csv")
            if r["kind"] == "code"}
    assert all(g in rows[frozenset((PAIR_C, PAIR_D))]["cells"] for g in HEADERS), "the flag names its cells"
    assert all("not a penalty" in r["note"] for r in _rows(report / "similarity-flags.csv"))


def test_honest_and_untouched_are_not_flagged(report: Path) -> None:
    assert _flags(report) == {(k, frozenset(p)) for k in ("code", "written")
                              for p in ((PAIR_C, PAIR_D), (COPYCAT, SOLUTION))}, "only the copies are flagged"
    scores = {(r["kind"], frozenset((r["student_a"], r["student_b"]))): float(r["score"])
              for r in _rows(report / "similarity-pairs.csv")}
    assert scores[("code", frozenset((HONEST_A, HONEST_B)))] < 0.5
    assert max(v for (kind, pair), v in scores.items() if "'" + STUB in pair) == 0.0, "the stub is boilerplate"


def test_pass_rates_match_the_gradebook(report: Path) -> None:
    rows = _rows(report / "pass-rates.csv")
    assert [r["test"] for r in rows] == ["ex3_unfreeze_top_tests", "ex2_freeze_body_tests", "ex1_replace_head_tests"]
    got = {r["test"]: (int(r["passed"]), int(r["failed"]), int(r["errored"])) for r in rows}
    assert got == {"ex3_unfreeze_top_tests": (2, 3, 1), "ex2_freeze_body_tests": (4, 0, 2),
                   "ex1_replace_head_tests": (5, 0, 1)}
    assert rows[0]["failure_rate"] == "0.667" and rows[0]["top_failure"] == ASSERT_K3[1]
    assert rows[0]["top_failure_count"] == "2"


def test_failure_messages_are_counted(report: Path) -> None:
    counted = {(r["test"], r["message"]): int(r["students"]) for r in _rows(report / "failures.csv")}
    assert counted[("ex3_unfreeze_top_tests", ASSERT_K3[1])] == 2
    assert counted[("ex3_unfreeze_top_tests", "AssertionError at: assert names == ['blocks.6', 'conv_head', "
                    "'head']")] == 1, "a bare assert is named by its line"
    assert counted[("ex3_unfreeze_top_tests", "NotImplementedError")] == 1
    assert counted[("ex2_freeze_body_tests", EVIL_ENAME)] == 1


def test_files_exist_and_images_are_png(report: Path) -> None:
    for name in ("report.md", "pass-rates.csv", "failures.csv", "similarity-flags.csv", "similarity-pairs.csv"):
        assert (report / name).is_file(), name
    for name in ("pass-rates.png", "similarity.png"):
        with Image.open(report / name) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 100
    text = (report / "report.md").read_text(encoding="utf-8")
    for link in ("pass-rates.png", "similarity.png", "pass-rates.csv", "failures.csv", "similarity-flags.csv"):
        assert f"]({link})" in text
    assert "never a penalty" in text


def test_formula_ids_are_neutralised(report: Path) -> None:
    for name in ("similarity-pairs.csv", "failures.csv", "pass-rates.csv", "similarity-flags.csv"):
        raw = (report / name).read_text(encoding="utf-8")
        assert not re.search(r"(^|,)\s*[=+\-@]", raw, re.MULTILINE), f"{name} holds a formula"
    assert f"'{STUB}" in (report / "similarity-pairs.csv").read_text(encoding="utf-8")


def test_student_html_is_not_raw_in_the_summary(report: Path) -> None:
    text = (report / "report.md").read_text(encoding="utf-8")
    assert "<" not in text and ">" not in text.replace("&gt;", ""), "raw HTML in report.md"
    assert md_text(EVIL_ENAME, 100) in text, "the exception name is shown, escaped"


def test_md_text_caps_and_flattens() -> None:
    assert md_text("a\n# title\n" + "x" * 400, cap=20) == "a \\# title xxxxxxxxx…"


def test_a_large_class_gets_a_histogram(tmp_path: Path) -> None:
    from tlcourse.grading.report import SIMILARITY_PLOTS, Pair

    students = [f"s{i:03d}" for i in range(60)]
    pairs = [Pair(kind, a, b, (i % 97) / 97, []) for kind in ("code", "written")
             for i, (a, b) in enumerate(zip(students, students[1:], strict=False))]
    with Image.open(SIMILARITY_PLOTS["histogram"](students, pairs, tmp_path / "h.png")) as image:
        assert image.format == "PNG"


def test_an_ungraded_assignment_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_course_root(tmp_path / "root")
    assert main(["report", "--assignment", WARMUP, "--root", str(root), "--out", str(tmp_path / "out")]) == 2
    assert "first (tlcourse grade)" in capsys.readouterr().err

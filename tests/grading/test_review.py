"""The static review of student code (:mod:`tlcourse.grading.review`): silent on honest work, loud on tampering.

(a) No false positives: every lesson's reference answers, its demonstration cells as a student might edit them,
its plausible wrong submission and its common mistake produce no finding (a finding withholds an honest grade).
(b) A zoo of hostile cells, each with the rule that must fire. (c) Legitimate code that looks close to the zoo.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nbformat
import pytest

from tlcourse.grading import list_assignments
from tlcourse.grading.review import RULES, Finding, review_notebook, review_source, review_sources

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENTS = list_assignments(REPO)
SUBMISSIONS = REPO / "tests" / "submissions"

# what a lesson's own (trusted) cells typically import and use: context for the zoo
COURSE = [
    "import copy\nimport numpy as np\nimport torch\nfrom torch import nn\nimport matplotlib.pyplot as plt\n"
    "import pandas as pd\nfrom tlcourse.freeze import freeze, layer_groups\nfrom IPython.display import display",
    "assert isinstance(n, int) and len(groups) == 3 and all(g.ok for g in groups)\n"
    "assert torch.equal(out, expected) and np.allclose(a, b)",
]


def _meta(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def _label(cell: nbformat.NotebookNode, index: int) -> str:
    return _meta(cell).get("grade_id") or f"cell {index + 1}"


def _lesson(assignment: str) -> tuple[nbformat.NotebookNode, list[str]]:
    """The source notebook and the trusted sources, as ``tlcourse grade`` builds them (locked cells and tests of
    the source, every cell of the released notebook)."""
    source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    released = nbformat.read(REPO / "lessons" / assignment / f"{assignment}.ipynb", as_version=4)
    trusted = [c.source for c in source.cells
               if _meta(c).get("locked") or (_meta(c).get("grade") and not _meta(c).get("solution"))]
    return source, trusted + [c.source for c in released.cells]


def _submission(path: Path) -> list[tuple[str, str]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [(k, "\n".join(v) if isinstance(v, list) else v) for k, v in raw.items() if not k.startswith("_")]


# ------------------------------------------------------------------------------------ (a) no false positives
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_solutions_have_no_finding(assignment: str) -> None:
    source, trusted = _lesson(assignment)
    answers = [(_label(c, i), c.source) for i, c in enumerate(source.cells)
               if c.cell_type == "code" and _meta(c).get("solution")]
    assert answers, f"{assignment} has no answer cells"
    assert all(src not in trusted for _, src in answers), "a reference answer leaked into the released notebook"
    assert review_sources(answers, trusted) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_edited_demonstration_cells_have_no_finding(assignment: str) -> None:
    """The unlocked demonstration cells, as a student who changed a number would hand them in."""
    source, trusted = _lesson(assignment)
    plain = [(_label(c, i), c.source + "\n# edited") for i, c in enumerate(source.cells)
             if c.cell_type == "code" and not _meta(c)]
    assert review_sources(plain, trusted) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_wrong_submissions_and_mistakes_have_no_finding(assignment: str) -> None:
    _, trusted = _lesson(assignment)
    paths = [p for p in (SUBMISSIONS / f"{assignment}.json", SUBMISSIONS / "mistakes" / f"{assignment}.json")
             if p.is_file()]
    assert paths, f"{assignment} has no wrong submission"
    for path in paths:
        assert review_sources(_submission(path), trusted) == [], path.name


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solved_notebook_has_no_finding(assignment: str) -> None:
    """The whole released notebook with the reference answers filled in, through ``review_notebook``."""
    source, trusted = _lesson(assignment)
    released = nbformat.read(REPO / "lessons" / assignment / f"{assignment}.ipynb", as_version=4)
    answers = {_meta(c)["grade_id"]: c.source for c in source.cells if _meta(c).get("solution")}
    for cell in released.cells:
        if _meta(cell).get("grade_id") in answers:
            cell.source = answers[_meta(cell)["grade_id"]]
    assert review_notebook(released, trusted) == []


# ------------------------------------------------------------------------------------------ (b) the zoo
ZOO: dict[str, tuple[str, str]] = {
    # a string spells a guarded name, whatever turns it into an attribute (red-team finds, end to end)
    "getattr_literal_sys": ("import os\ns = getattr(os, 'sys')", "string-attribute"),
    "formatter_get_field": ("import os, string\nfmt = string.Formatter()\n"
                            "mods = fmt.get_field('0.sys.modules', (os.path,), {})[0]", "string-attribute"),
    "format_field_attribute": ("import os\nx = '{0.sys.modules}'.format(os.path)", "string-attribute"),
    "format_field_dunder": ("x = '{0.__class__.__mro__}'.format(1)", "string-attribute"),
    "getattr_transformers": ("import os\nip = getattr(os, 'x')\nlst = getattr(ip, 'input_transformers_cleanup')",
                             "string-attribute"),
    "pandas_io_pickle": ("from pandas.io.pickle import read_pickle as rp\nrp('w.pkl')", "unsafe-api"),
    "torch_serialization_load": ("from torch.serialization import load as tl\ntl('w.pkl', weights_only=False)",
                                 "unsafe-api"),
    "numpy_read_array": ("import numpy as np\nnp.lib.format.read_array(open('w.npy', 'rb'), allow_pickle=True)",
                         "unsafe-api"),
    # kernel hooks, however the names are spelt
    "hook_obfuscated_import": ("getattr(__import__('IPy' + 'thon'), 'get_' + 'ipython')().events.register("
                               "'post_run_cell', lambda r: None)", "dangerous-name"),
    "hook_get_ipython": ("ip = get_ipython()\nip.events.register('post_run_cell', fix)", "dangerous-name"),
    "input_transformer": ("get_ipython().input_transformers_post.append(lambda lines: lines)", "dangerous-name"),
    "ast_transformer_from_ipython": ("from IPython import get_ipython\nget_ipython().ast_transformers.append(t)",
                                     "import"),
    "ipython_core_import": ("import IPython.core.interactiveshell as sh", "import"),
    "ipykernel_import": ("from ipykernel.kernelbase import Kernel", "import"),
    "events_through_alias": ("shell = tools.sh\nshell.events.register('post_run_cell', f)", "dangerous-name"),
    # compile and the builtins
    "builtins_compile_patch": ("import builtins\nbuiltins.compile = lambda *a, **k: None", "monkey-patch"),
    "builtins_dict": ("__builtins__['compile'] = my_compile", "dunder"),
    "print_self_builtins": ("b = print.__self__\nb.compile = f", "dunder"),
    # tracing
    "settrace_sys": ("import sys\nsys.settrace(swap)", "import"),
    "settrace_threading": ("import threading\nthreading.settrace(swap)", "import"),
    "settrace_through_os": ("import os\nos.sys.settrace(swap)", "introspection"),
    "settrace_through_course_module": ("from tlcourse import cli\ncli.sys.settrace(swap)", "introspection"),
    "frame_through_generator": ("def g():\n    yield\nit = g()\nframe = it.gi_frame.f_back", "introspection"),
    # always-true objects
    "class_eq": ("class Always:\n    def __eq__(self, other):\n        return True", "dunder"),
    "type_three_args": ("Always = type('Always', (), {'__eq__': lambda s, o: True})", "dangerous-name"),
    "type_obfuscated_dunder": ("A = type('A', (object,), {'_' + '_eq__': f})", "dangerous-name"),
    "total_ordering": ("import functools\n@functools.total_ordering\nclass K:\n    def __lt__(self, o):\n"
                       "        return False", "dunder"),
    "torch_function": ("class T(torch.Tensor):\n    @classmethod\n    def __torch_function__(cls, f, t, a=(), k=None):"
                       "\n        return True", "dunder"),
    "tensor_subclass_all": ("class T(torch.Tensor):\n    def all(self):\n        return torch.tensor(True)",
                            "subclass"),
    "as_subclass": ("out = torch.zeros(2).as_subclass(Fake)", "subclass"),
    "int_subclass": ("class Yes(int):\n    pass", "subclass"),
    "metaclass": ("class A(metaclass=Meta):\n    pass", "metaclass"),
    "bool_dunder": ("class A:\n    def __bool__(self):\n        return True", "dunder"),
    # library checks replaced
    "torch_equal": ("torch.equal = lambda *a: True", "monkey-patch"),
    "np_allclose": ("np.allclose = lambda *a, **k: True", "monkey-patch"),
    "alias_then_patch": ("t = torch\nt.equal = lambda *a: True", "monkey-patch"),
    "from_import_then_patch": ("from numpy import testing as npt\nnpt.assert_allclose = print", "monkey-patch"),
    "class_method_patch": ("nn.Module.train = lambda self, mode=True: self", "monkey-patch"),
    "setattr_literal": ("setattr(torch, 'equal', lambda *a: True)", "monkey-patch"),
    "setattr_dynamic": ("setattr(np, name, f)", "dangerous-name"),
    "augmented_patch": ("torch.testing.assert_close += 0", "monkey-patch"),
    "del_patch": ("del torch.equal", "monkey-patch"),
    "type_of_instance_patch": ("type(model).forward = lambda self, x: x", "monkey-patch"),
    "module_handed_to_function": ("def patch(m):\n    m.equal = f\npatch(torch)", "monkey-patch"),
    "from_imported_module_handed": ("def patch(m):\n    m.Module.train = f\npatch(nn)", "monkey-patch"),
    "module_in_a_list": ("for m in [torch]:\n    m.equal = f", "monkey-patch"),
    "vars_of_module": ("vars(torch)['equal'] = f", "dangerous-name"),
    "module_dict": ("torch.__dict__['equal'] = f", "dunder"),
    "rebind_module_name": ("class Fake:\n    def equal(self, *a):\n        return True\ntorch = Fake()", "shadowing"),
    "rebind_from_import": ("def freeze(model):\n    pass", "shadowing"),
    "globals_rebind": ("globals()['freeze'] = f", "dangerous-name"),
    # IPython history
    "history_In": ("x = In[-2]", "dangerous-name"),
    "history_i": ("print(_i3)", "dangerous-name"),
    "history_oh": ("y = _oh[4]", "dangerous-name"),
    # code from text
    "exec_base64": ("import base64\nexec(base64.b64decode('cHJpbnQoMSk='))", "dangerous-name"),
    "eval_rot13": ("import codecs\neval(codecs.decode('cevag(1)', 'rot13'))", "dangerous-name"),
    "compile_bytes": ("c = compile(bytes([112, 40, 41]).decode(), 'x', 'exec')", "dangerous-name"),
    "exec_alias": ("run = exec\nrun('x = 1')", "dangerous-name"),
    "importlib": ("import importlib\nsys = importlib.import_module('s' + 'ys')", "import"),
    "dunder_import": ("s = __import__('sys')", "dangerous-name"),
    "star_import": ("from numpy import *", "import"),
    "relative_import": ("from . import helpers", "import"),
    "private_module_import": ("from sklearn.utils._testing import assert_allclose", "import"),
    "grader_import": ("import tlcourse.grading.canary as c", "import"),
    "mock_any": ("from unittest.mock import ANY\nresult = ANY", "import"),
    "operator_attrgetter": ("import operator\nf = operator.attrgetter(name)", "import"),
    # magics and the shell
    "magic_capture": ("%%capture\nx = 1", "magic"),
    "magic_run": ("%run evil.py", "magic"),
    "magic_load_ext": ("%load_ext evil", "magic"),
    "magic_matplotlib_module_backend": ("%matplotlib module://evil", "magic"),
    "shell_escape": ("!pip install evil", "shell"),
    "shell_capture": ("files = !ls", "shell"),
    "code_inside_time": ("%time exec('x = 1')", "dangerous-name"),
    "code_inside_timeit_cell": ("%%timeit -n 1\nimport sys", "import"),
    # invented: kernels replaced under torch, pickles, modules written then imported, ...
    "torch_library_override": ("lib = torch.library.Library('aten', 'IMPL')\nlib.impl('equal', f, 'CPU')",
                               "unsafe-api"),
    "module_written_by_to_csv": ("pd.DataFrame(columns=['import evil']).to_csv('seaborn.py', index=False)",
                                 "unsafe-api"),
    "pickle_via_torch_load": ("state = torch.load('x.pt', weights_only=False)", "unsafe-api"),
    "pickle_via_numpy": ("a = np.load('x.npy', allow_pickle=True)", "unsafe-api"),
    "remote_code": ("m = AutoModel.from_pretrained('.', trust_remote_code=True)", "unsafe-api"),
    "write_text": ("from pathlib import Path\nPath('helper.txt').write_text(code)", "unsafe-api"),
    "open_for_writing": ("with open('helper.txt', 'w') as f:\n    f.write(code)", "dangerous-name"),
    "os_environ_write": ("import os\nos.environ['TLCOURSE_PROFILE'] = 'full'", "unsafe-api"),
    "os_system": ("import os\nos.system('ls')", "unsafe-api"),
    "torch_private": ("torch._C._set_grad_enabled(False)", "private"),
    "random_private_os": ("import random\nrandom._os.system('ls')", "private"),
    "builtin_isinstance_shadowed": ("def isinstance(obj, cls):\n    return True", "shadowing"),
    "builtin_all_shadowed": ("all = lambda *a: True", "shadowing"),
    "global_len": ("def f():\n    global len\n    len = lambda x: 3", "shadowing"),
    "getattr_alias": ("g = getattr\nequal = g(torch, 'equal')", "dangerous-name"),
    "breakpoint": ("breakpoint()", "dangerous-name"),
    "matplotlib_use_module": ("import matplotlib\nmatplotlib.use('module://evil')", "unsafe-api"),
    "unparsable": ("def f(:\n    pass", "unparsable"),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_hostile_cell_is_flagged_by_its_rule(name: str) -> None:
    source, rule = ZOO[name]
    found = review_source(source, COURSE)
    assert rule in {f.rule for f in found}, f"{name}: expected {rule!r}, got {found}"
    assert all(f.cell == "cell 1" and f.evidence for f in found)


def test_zoo_covers_every_rule() -> None:
    assert len(ZOO) >= 40
    assert {rule for _, rule in ZOO.values()} == set(RULES) | {"unparsable"}


STATS_COURSE = [*COURSE, "from tlcourse.stats import accuracy, paired_bootstrap\nfrom tlcourse import stats\n"
                          "from sklearn.metrics import roc_auc_score"]


@pytest.mark.parametrize("source", [
    "gap = paired_bootstrap(y, a, b, metric=accuracy)",  # a function the course imports, handed on
    "scores = [accuracy, roc_auc_score]",
    "m = accuracy\ngap = paired_bootstrap(y, a, b, metric=m)",
    "from tlcourse.stats import accuracy as acc\ngap = paired_bootstrap(y, a, b, metric=acc)",
])
def test_course_functions_handed_to_a_function_are_not_modules(source: str) -> None:
    assert review_source(source, STATS_COURSE) == []


@pytest.mark.parametrize("source", [
    "def patch(m):\n    m.accuracy = f\npatch(stats)",  # a module the course imports by from-import
    "def patch(m):\n    m.Module.train = f\npatch(nn)",
    "from tlcourse import viz\ndef patch(m):\n    m.x = f\npatch(viz)",  # the student's own import
    "from sklearn.metrics import accuracy_score\nrun([accuracy_score])",  # not vouched for by the course: unknown
])
def test_modules_and_unvouched_names_handed_on_are_still_flagged(source: str) -> None:
    assert "monkey-patch" in {f.rule for f in review_source(source, STATS_COURSE)}


def test_module_or_not_is_read_from_files() -> None:
    from tlcourse.grading.review import _names_a_module

    assert _names_a_module("tlcourse.stats") and _names_a_module("torch.nn") and _names_a_module("tlcourse")
    assert not _names_a_module("tlcourse.stats.accuracy") and not _names_a_module("sklearn.metrics.roc_auc_score")
    assert _names_a_module("not_installed_anywhere.f")  # unknown: treated as a module


def test_cell_claiming_locked_is_reviewed() -> None:
    """Metadata is the student's: a hostile cell that claims ``locked`` (and a grade id) is reviewed."""
    cell = nbformat.v4.new_code_cell("torch.equal = lambda *a: True",
                                     metadata={"nbgrader": {"locked": True, "grade_id": "setup", "grade": False}})
    found = review_notebook(nbformat.v4.new_notebook(cells=[cell]), COURSE)
    assert [(f.cell, f.line, f.rule, f.evidence) for f in found] == [
        ("setup", 1, "monkey-patch", "torch.equal = lambda *a: True")]


def test_notebook_labels_lines_and_trusted_cells() -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("import sys"),
        nbformat.v4.new_code_cell(COURSE[0]),
        nbformat.v4.new_code_cell("x = 1\n\nimport sys  # trailing", metadata={"nbgrader": {"grade_id": "ex1"}}),
        nbformat.v4.new_code_cell("y = 2\nnp.allclose = f"),
    ])
    found = review_notebook(nb, COURSE)
    assert found == [Finding("ex1", 3, "import", "import sys  # trailing"),
                     Finding("cell 4", 2, "monkey-patch", "np.allclose = f")]
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].line = 1  # type: ignore[misc]


def test_notebook_as_plain_dict_with_list_sources() -> None:
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": ["x = 1\n", "exec('y')"]}]}
    assert [(f.cell, f.line, f.rule) for f in review_notebook(nb, ())] == [("cell 1", 2, "dangerous-name")]


def test_unparsable_cell_names_its_line() -> None:
    [finding] = review_source("x = 1\ny = (\n", COURSE)
    assert finding.rule == "unparsable" and finding.line >= 2


def test_trusted_source_is_not_reviewed_even_with_hostile_code() -> None:
    """Trust is by exact source: the course's own cell is skipped, one extra character is not."""
    hostile = "import sys\nsys.settrace(None)"
    assert review_sources([("cell 1", hostile)], [hostile]) == []
    assert review_sources([("cell 1", hostile + " ")], [hostile])


# ---------------------------------------------------------------------------------- (c) legitimate code
LEGIT = {
    "functional_relu": "import torch\ny = torch.nn.functional.relu(x)",
    "model_eval": "model.eval()\nwith torch.no_grad():\n    out = model(x)",
    "dataset_subclass": ("from torch.utils.data import Dataset\n\nclass Pairs(Dataset):\n"
                         "    def __init__(self, xs, ys):\n        super().__init__()\n        self.xs, self.ys = xs, ys\n"
                         "    def __len__(self):\n        return len(self.xs)\n"
                         "    def __getitem__(self, i):\n        return self.xs[i], self.ys[i]"),
    "module_subclass": ("class Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                        "        self.fc = nn.Linear(4, 2)\n    def forward(self, x):\n        return self.fc(x)"),
    "getattr_literal": "head = getattr(model, 'classifier')",
    "getattr_literal_loop": "parts = {n: getattr(model, n) for n in ['features', 'classifier']}",
    "head_replaced": "model.classifier = nn.Linear(1280, 2)\nfor p in model.parameters():\n    p.requires_grad = False",
    "subscript_of_own_dict": "history = {}\nhistory['loss'] = [0.5]\nresults[0] = 1",
    "reimport_same": "import numpy as np\nfrom torch import nn\nfrom tlcourse.freeze import freeze",
    "magic_matplotlib": "%matplotlib inline\nplt.plot([1, 2])",
    "magic_time": "%time y = model(x)",
    "magic_timeit_cell": "%%timeit -n 3\nmodel(x)",
    "os_path": "import os\npath = os.path.join(os.getcwd(), 'data')\nnames = os.listdir(path)",
    "open_to_read": "with open('labels.txt') as f:\n    labels = f.read().splitlines()",
    "pil_open": "from PIL import Image\nimg = Image.open('cat.jpg')",
    "type_name": "print(type(x).__name__, torch.__version__)",
    "main_guard": "if __name__ == '__main__':\n    main()",
    "local_builtin_names": "def f(input, max=3):\n    sum = 0\n    return sum",
    "unused_builtin_at_top": "input = torch.randn(1, 3, 224, 224)",
    "regex_compile": "import re\npattern = re.compile(r'\\d+')",
    "torch_load_weights": "state = model.state_dict()\nmodel.load_state_dict(state)",
    "copy_and_freeze": "clone = copy.deepcopy(model)\nfreeze(clone)\ngroups = layer_groups(clone)",
    "dataclass": "from dataclasses import dataclass\n@dataclass\nclass Run:\n    lr: float\n    epochs: int = 3",
    "lambda_callbacks": "cbs = [lambda h: h.records[-1].update(ok=True)]",
    "own_private_loop_name": "for _i in range(3):\n    print(_i)",
    "getattr_of_module_in_loop": "photos = [getattr(np, n) for n in ('zeros', 'ones')]",
}


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_legitimate_code_has_no_finding(name: str) -> None:
    assert review_source(LEGIT[name], COURSE) == []

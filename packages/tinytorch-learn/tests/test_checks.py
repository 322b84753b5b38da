"""The checks are honest: the library's own implementations pass every one, each planted
mistake fails its exercise and no other, and the library is unchanged afterwards."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from solutions import MORE_PLANTED, PLANTED, reference_file

from tinytorch.core import Tensor, autograd, ops
from tinytorch.learn import check_module, load_curriculum
from tinytorch.learn.substitute import StudentFileError

COURSE = load_curriculum()
EXERCISES = [(m, ex) for m in COURSE.modules for ex in m.exercises]


def _targets():
    return {ex.target: ex.resolve().current() for _, ex in EXERCISES}


@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.name)
def test_the_library_s_own_implementations_pass_every_check(module, tmp_path):
    (tmp_path / module.filename).write_text(reference_file(module))
    results = check_module(module, tmp_path)
    assert [(r.exercise.name, r.status, r.message) for r in results if not r.passed] == []
    assert all(r.cases_passed == r.cases == len(r.exercise.cases) for r in results)


@pytest.mark.parametrize("module, exercise", EXERCISES, ids=lambda x: getattr(x, "name", ""))
def test_a_planted_mistake_fails_its_exercise_and_no_other(module, exercise, tmp_path):
    before = _targets()
    (tmp_path / module.filename).write_text(reference_file(module, planted=exercise.name))
    results = check_module(module, tmp_path)
    failing = [r.exercise.name for r in results if not r.passed]
    assert failing == [exercise.name]
    diagnosis = next(r for r in results if r.exercise.name == exercise.name).message
    assert diagnosis.startswith("case ") and "expected" in diagnosis or "raised" in diagnosis
    assert _targets() == before  # every substitution was undone


@pytest.mark.parametrize("name, mistake, edit, words", MORE_PLANTED, ids=[f"{m[0]}: {m[1]}" for m in MORE_PLANTED])
def test_more_planted_mistakes_fail_their_exercise_and_say_what_is_wrong(name, mistake, edit, words, tmp_path):
    module = next(m for m, ex in EXERCISES if ex.name == name)
    before = _targets()
    (tmp_path / module.filename).write_text(reference_file(module, planted=name, edit=edit))
    results = check_module(module, tmp_path)
    assert [r.exercise.name for r in results if not r.passed] == [name]
    failed = next(r for r in results if r.exercise.name == name)
    assert any(words in d for d in failed.details), failed.details
    assert _targets() == before


def test_a_reversed_topological_order_is_named_as_such(tmp_path):
    module = COURSE.module("autograd")
    (tmp_path / module.filename).write_text(reference_file(module, planted="topological_order"))
    [result] = check_module(module, tmp_path, "topological_order")
    # the first case's sum is listed first, before the add it was made from
    assert result.message == (
        "case 1 `y = ((a * b) + a * a).sum(); graph_order(target(y), y)` with a (3, 4), b (3, 4): output: expected 'each of the 6 tensors "
        "once, after its parents', got 'y is listed before an output of add of shape (3, 4), its parent'")
    assert any("gradient of a: expected an array, got None" in d for d in result.details)  # the engine case


def test_every_exercise_has_a_planted_mistake_and_its_tests_exist():
    assert sorted(PLANTED) == sorted(ex.name for _, ex in EXERCISES)
    root = Path(__file__).resolve().parents[3]
    for _, ex in EXERCISES:
        for test in ex.tests:
            assert (root / test.split("::")[0]).is_file(), (ex.qualified, test)


def test_a_gradient_failure_reports_gradcheck_s_worst_element(tmp_path):
    module = COURSE.module("autograd")
    (tmp_path / module.filename).write_text(reference_file(module, planted="mul_backward"))
    [result] = check_module(module, tmp_path, "mul_backward")  # a's gradient is grad·a, not grad·b
    assert result.status == "fail" and result.cases_passed < result.cases
    assert "gradient of a: worst element" in result.message
    assert "finite differences disagree with your gradient: worst mismatch at input a, element" in result.message
    # a transposed gradient has the right size but not the right shape: the engine refuses it
    (tmp_path / module.filename).write_text(reference_file(module, planted="matmul_backward"))
    [result] = check_module(module, tmp_path, "matmul_backward")
    assert result.status == "fail"
    assert "matmul: backward returned a gradient of shape (5, 4) for an input of shape (4, 5)" in result.message


def test_the_library_is_unchanged_in_the_same_process_after_a_failing_check(tmp_path):
    module = COURSE.module("autograd")
    reference = ops.MatMulFunction.backward
    (tmp_path / module.filename).write_text(
        "def matmul_backward(self, grad):\n    raise ZeroDivisionError('student bug')\n")
    [result] = check_module(module, tmp_path, "matmul_backward")
    assert result.status == "fail" and "raised ZeroDivisionError: student bug (autograd.py, line 2)" in result.message
    assert ops.MatMulFunction.backward is reference
    a = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    (a @ Tensor(np.ones((3, 2)))).sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((2, 3), 2.0))


def test_the_reference_named_in_the_file_does_not_pass(tmp_path):
    module = COURSE.module("autograd")
    (tmp_path / module.filename).write_text(
        "from tinytorch.core.ops import MatMulFunction\n\n"
        "def matmul_backward(self, grad):\n    return MatMulFunction.backward(self, grad)\n")
    [result] = check_module(module, tmp_path, "matmul_backward")
    assert result.status == "uses reference" and "line 4" in result.message


def test_the_reference_kept_at_import_time_does_not_pass(tmp_path):
    module = COURSE.module("tensor-ops")
    (tmp_path / module.filename).write_text(
        "import tinytorch.core.kernels as K\n_keep = getattr(K, 'sof' + 'tmax')\n\n"
        "def softmax(x, axis=-1):\n    return _keep(x, axis)\n")
    [result] = check_module(module, tmp_path, "softmax")
    assert result.status == "uses reference" and "kept at import time" in result.message
    from tinytorch.core import kernels
    assert kernels.softmax(np.zeros(2)).tolist() == [0.5, 0.5]


def test_the_topological_order_must_not_recurse(tmp_path):
    module = COURSE.module("autograd")
    (tmp_path / module.filename).write_text(
        "def topological_order(root):\n"
        "    order, seen = [], set()\n"
        "    def visit(node):\n"
        "        if id(node) in seen:\n            return\n"
        "        seen.add(id(node))\n"
        "        if node._ctx is not None:\n"
        "            for p in node._ctx.parents:\n"
        "                if p.requires_grad:\n                    visit(p)\n"
        "        order.append(node)\n"
        "    if root._ctx is not None and not hasattr(root._ctx, 'parents'):\n"
        "        raise RuntimeError('the graph was freed')\n"
        "    visit(root)\n    return order\n")
    [result] = check_module(module, tmp_path, "topological_order")
    assert result.cases_passed == result.cases - 1, result.details
    assert result.message == (
        "case 5 `y = chain(a, 3000); graph_order(target(y), y)` with a (3,): RecursionError (autograd.py, line 10): your code called "
        f"itself deeper than Python allows ({sys.getrecursionlimit()} calls); a loop with an explicit stack has no "
        "such limit")
    assert autograd._topological_order.__module__ == "tinytorch.core.autograd"


def test_a_recursion_error_that_is_not_the_student_s_recursion_is_not_blamed_on_it(tmp_path):
    module = COURSE.module("autograd")
    (tmp_path / module.filename).write_text(
        "import copy\n\n"
        "def add_backward(self, grad):\n"
        "    nested = []\n"
        "    for _ in range(100_000):\n        nested = [nested]\n"
        "    copy.deepcopy(nested)  # the library module recurses, not this function\n"
        "    return grad, grad\n")
    [result] = check_module(module, tmp_path, "add_backward")
    assert result.status == "fail" and "raised RecursionError: maximum recursion depth exceeded" in result.message
    assert "(autograd.py, line 7)" in result.message and "your code called itself" not in result.message


def test_the_reference_reached_by_a_built_name_is_named_not_a_recursion(tmp_path):
    module = COURSE.module("autograd")
    (tmp_path / module.filename).write_text(
        "import importlib\n\n"
        "def matmul_backward(self, grad):\n"
        "    ops = importlib.import_module('tinytorch.core.' + 'ops')\n"
        "    cls = getattr(ops, 'MatMul' + 'Function')\n"
        "    try:\n"
        "        return getattr(cls, 'back' + 'ward')(self, grad)\n"
        "    except Exception:  # nor can the student's except hide it\n"
        "        return None, None\n")
    [result] = check_module(module, tmp_path, "matmul_backward")
    assert result.status == "uses reference", result
    assert result.message.startswith("autograd.py line 7 calls the library's MatMulFunction.backward from inside "
                                     "your matmul_backward")
    assert "Recursion" not in result.message
    assert ops.MatMulFunction.backward.__module__ == "tinytorch.core.ops"


def test_a_broken_or_missing_file_is_one_error_naming_it(tmp_path):
    module = COURSE.module("autograd")
    with pytest.raises(StudentFileError, match="autograd.py: no such file"):
        check_module(module, tmp_path)
    (tmp_path / module.filename).write_text("def add_backward(self, grad)\n    return grad\n")
    with pytest.raises(StudentFileError, match=r"autograd.py, line 1: syntax error"):
        check_module(module, tmp_path)
    with pytest.raises(ValueError, match="no exercise 'nope'"):
        check_module(module, tmp_path, "nope")


def test_a_loop_that_never_ends_is_stopped_and_reported(tmp_path, monkeypatch):
    from tinytorch.learn import checks, substitute

    monkeypatch.setattr(checks, "CASE_SECONDS", 0.5)
    module = COURSE.module("autograd")
    (tmp_path / module.filename).write_text(
        "def add_backward(self, grad):\n    while True:\n        try:\n            pass\n"
        "        except Exception:\n            pass\n")
    [result] = check_module(module, tmp_path, "add_backward")
    assert result.status == "fail" and "still running after 0.5 s" in result.message
    assert ops.AddFunction.backward.__module__ == "tinytorch.core.ops"
    monkeypatch.setattr(substitute, "IMPORT_SECONDS", 0.5)
    (tmp_path / module.filename).write_text("while True:\n    pass\n")
    with pytest.raises(StudentFileError, match="importing it was still running after 0.5 s"):
        check_module(module, tmp_path)


def test_a_property_target_is_written_as_a_plain_function_and_put_back_as_the_property(tmp_path):
    from tinytorch.core.nn.tracker import ModuleCall

    reference = ModuleCall.__dict__["self_seconds"]
    module = COURSE.module("profiling")
    (tmp_path / module.filename).write_text(
        "def self_seconds(self):\n    return self.seconds - self.child_seconds\n")
    [result] = check_module(module, tmp_path, "self_seconds")
    assert result.status == "pass", result.message
    assert ModuleCall.__dict__["self_seconds"] is reference and isinstance(reference, property)


def test_a_method_may_call_itself_on_another_object(tmp_path):
    # a tree walk through the library's name for the target, on other objects: not the reference
    module = COURSE.module("profiling")
    (tmp_path / module.filename).write_text(
        "def self_seconds(self):\n"
        "    above = self.parent.self_seconds if self.parent is not None else 0.0\n"
        "    return self.seconds - self.child_seconds + 0.0 * above\n")
    [result] = check_module(module, tmp_path, "self_seconds")
    assert result.status == "pass", result.message
    (tmp_path / module.filename).write_text(  # on the same object it is the library's version again
        "def self_seconds(self):\n"
        "    return type(self).self_seconds.fget(self) if self.seconds >= 0 else 0.0\n")
    [result] = check_module(module, tmp_path, "self_seconds")
    assert result.status == "uses reference" and "line 2 calls the library's ModuleCall.self_seconds" in result.message


def test_simulated_ranks_reduce_over_every_rank_and_give_the_library_back():
    from tinytorch.core import distributed as dist
    from tinytorch.learn.harness import simulated_ranks

    library = dist.all_reduce

    def rank_work(rank):
        total = dist.all_reduce(np.array([1.0, rank]))
        return dist.get_rank(), dist.get_world_size(), total.tolist()

    assert simulated_ranks(3, rank_work) == [(r, 3, [3.0, 3.0]) for r in range(3)]

    def failing(rank):
        if rank == 1:
            raise ZeroDivisionError("rank 1 failed")
        return dist.all_reduce(np.zeros(2))  # waits for rank 1, which never comes: released, not hung

    with pytest.raises(ZeroDivisionError, match="rank 1 failed"):
        simulated_ranks(2, failing)
    assert dist.all_reduce is library and dist.get_world_size() == 1

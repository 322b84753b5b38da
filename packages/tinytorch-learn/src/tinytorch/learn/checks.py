"""Running an exercise's checks on the student's implementation.

Each case of the curriculum is an expression over inputs made by `tinytorch.core.testing`
(``randn(3, 4)`` is a float64 tensor that requires grad, ``array(2, 5)`` a float64 ndarray,
``ints(0, 4, 5)`` class ids...). A case runs twice on the same inputs: with the library's
implementation, which gives the expected values, then with the student's in its place. Outputs
and, for tensors, the gradients of a random uneven projection of the output must agree, and the
student's gradients must pass the library's finite-difference `gradcheck`. A failure says which
case and input, the worst element, the expected and the obtained value, and gradcheck's worst
element; it never shows the reference's code.
"""

from __future__ import annotations

import collections
import functools
import inspect
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.core import Tensor, autograd, kernels, ops
from tinytorch.core import functional as F
from tinytorch.core.gradcheck import GradcheckError, gradcheck
from tinytorch.core.testing import make_array, make_tensor

from .curriculum import Case, Exercise, Module, load_curriculum
from .substitute import (
    ReferenceUsed,
    TimeLimitExceeded,
    load_student_module,
    reference_uses,
    substituted,
    time_limit,
)

#: Tolerances for comparing with the reference (float64 inputs throughout).
RTOL, ATOL = 1e-6, 1e-8

#: Seconds a student's code may run for one case (the cases are tiny; more is a loop that never ends).
CASE_SECONDS = 60.0


# ------------------------------------------------------------------------ the cases' language

def _input_makers(seed: int) -> dict[str, Callable]:
    counter = iter(range(seed * 1000, seed * 1000 + 1000))

    def randn(*shape):
        return make_tensor(*shape, seed=next(counter))

    def nonzero(*shape):
        return make_tensor(*shape, seed=next(counter), away_from_zero=True)

    def positive(*shape):
        return make_tensor(*shape, seed=next(counter), positive=True)

    def const(*shape):
        return make_tensor(*shape, seed=next(counter), requires_grad=False)

    def array(*shape):
        return make_array(*shape, seed=next(counter))

    def ints(low, high, *shape):
        return np.random.default_rng(next(counter)).integers(low, high, size=shape)

    return dict(randn=randn, nonzero=nonzero, positive=positive, const=const, array=array, ints=ints)


def _chain(x: Tensor, n: int) -> Tensor:
    """``n`` ops deep: a graph a recursive walk cannot traverse."""
    y = x
    for _ in range(n):
        y = y * 1.0001
    return y


def _raises(kind: type[BaseException], fn: Callable, *args: Any, **kwargs: Any) -> str:
    """The name of the error ``fn`` raises (a case that expects a refusal)."""
    try:
        fn(*args, **kwargs)
    except kind:
        return f"raises {kind.__name__}"
    return f"returns without raising {kind.__name__}"


def _bpe_roundtrip(text: str, vocab_size: int) -> dict:
    """Train a byte-level BPE tokenizer on ``text`` and encode/decode it (merges, ids, text)."""
    from tinytorch.language import BPETokenizer

    tok = BPETokenizer(vocab_size=vocab_size).fit(text)
    ids = tok.encode(text)
    return {"ids": ids, "decoded": tok.decode(ids)}


def _sgd_run(steps: int = 3, **settings: Any) -> list[np.ndarray]:
    """The parameters after each of ``steps`` SGD steps on fixed, uneven gradients (two
    parameters, so a group holds more than one)."""
    from tinytorch.core.optim import SGD

    params = [make_tensor(3, 2, seed=1), make_tensor(4, seed=2)]
    opt = SGD(params, **settings)
    trajectory = []
    for step in range(steps):
        for i, p in enumerate(params):
            p.grad = make_array(*p.shape, seed=10 * step + i)
        opt.step()
        trajectory.append([p.data.copy() for p in params])
    return trajectory


def _char_roundtrip(text: str) -> dict:
    """Fit a character tokenizer on ``text``: its vocabulary, ids and decoded text."""
    from tinytorch.language import CharTokenizer

    tok = CharTokenizer().fit(text)
    ids = tok.encode(text)
    return {"chars": tok.chars, "vocab_size": tok.vocab_size, "ids": ids, "decoded": tok.decode(ids)}


def _kv_run(chunks: list[int], max_len: int = 8) -> list:
    """Append chunks of ``chunks[i]`` tokens to a KVCache: what each append returns, and the
    cache's length after it."""
    from tinytorch.language.model import KVCache

    cache = KVCache(batch_size=2, num_heads=2, max_len=max_len, head_size=3, dtype=np.float64)
    out = []
    for i, t in enumerate(chunks):
        k, v = make_array(2, 2, t, 3, seed=2 * i), make_array(2, 2, t, 3, seed=2 * i + 1)
        keys, values = cache.append(k, v)
        out.append([keys.copy(), values.copy(), cache.length])
    return out


def _gpt_generate(new_tokens: int) -> list:
    """Greedy-ish tokens from a tiny TinyGPT decoded with its KV cache (seeded sampling)."""
    from tinytorch.core import manual_seed
    from tinytorch.language import TinyGPT

    manual_seed(0)
    model = TinyGPT(vocab_size=11, d_model=16, num_heads=2, num_layers=2, max_seq_len=12, dropout=0.0)
    model.eval()
    return model.generate(np.array([[1, 2, 3]]), max_new_tokens=new_tokens, seed=0).tolist()


def namespace(exercise: Exercise) -> dict[str, Any]:
    """The names a case (or a kernel) of ``exercise`` is evaluated with: the common ones (``np``,
    ``Tensor``, ``F``, ``target``, the `tinytorch.learn.harness` doubles...) and the library
    objects its module lists under ``names``.

    >>> ns = namespace(load_curriculum().exercise("data-loading", "loader_batches"))
    >>> ns["DataLoader"].__name__, callable(ns["target"])
    ('DataLoader', True)
    """
    from tinytorch.core import manual_seed, no_grad
    from tinytorch.language import functional as LF
    from tinytorch.perf import OpCount, RooflineModel
    from tinytorch.vision import functional as VF

    from . import harness
    from .curriculum import resolve_name
    from .substitute import plain_function

    target = exercise.resolve()

    def live_target(*args, **kwargs):  # whatever the target holds now: reference or student
        return plain_function(target.current())(*args, **kwargs)

    names = {name: resolve_name(spec) for name, spec in load_curriculum().module(exercise.module).names.items()}
    return dict(np=np, Tensor=Tensor, F=F, ops=ops, autograd=autograd, kernels=kernels, VF=VF, LF=LF,
                target=live_target, chain=_chain, raises=_raises, bpe_roundtrip=_bpe_roundtrip,
                char_roundtrip=_char_roundtrip, kv_run=_kv_run, gpt_generate=_gpt_generate,
                causal=lambda q, k: LF.causal_bias(q, k, np.float64), sgd_run=_sgd_run,
                RooflineModel=RooflineModel, OpCount=OpCount, manual_seed=manual_seed, no_grad=no_grad,
                OpClock=harness.OpClock, simulated_ranks=harness.simulated_ranks, recorded=harness.recorded,
                backward_count=harness.backward_count, nbytes=harness.nbytes, graph_order=harness.graph_order,
                **names)


def evaluate(expr: str, setup: tuple[str, ...], names: dict[str, Any]) -> Any:
    """Run the ``setup`` statements, then evaluate ``expr``, in one namespace built from ``names``.

    >>> evaluate("y + 1", ("y = 2 * x",), {"x": 3})
    7
    """
    scope = dict(names)
    if setup:
        exec("\n".join(setup), scope)
    return eval(expr, scope)


# ------------------------------------------------------------------------------ one evaluation

@dataclass
class _Run:
    inputs: dict[str, Any]
    output: Any
    grads: dict[str, np.ndarray | None]


def _upstream(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(10_000 + seed)
    return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def make_inputs(specs: dict[str, str], seed: int) -> dict[str, Any]:
    """The inputs a case or kernel names (``{"x": "randn(3, 4)"}``), reproducible from ``seed``.

    >>> make_inputs({"x": "array(2, 3)", "y": "ints(0, 4, 5)"}, seed=1)["x"].shape
    (2, 3)
    """
    makers = _input_makers(seed)
    return {name: eval(spec, {**makers, "np": np}) for name, spec in specs.items()}


def _run(exercise: Exercise, case: Case, seed: int) -> _Run:
    inputs = make_inputs(case.inputs, seed)
    output = evaluate(case.expr, case.setup, {**namespace(exercise), **inputs})
    grads: dict[str, np.ndarray | None] = {}
    if isinstance(output, Tensor) and output.requires_grad:
        (output * Tensor(_upstream(output.shape, seed))).sum().backward()
        grads = {name: t.grad for name, t in inputs.items() if isinstance(t, Tensor) and t.requires_grad}
    return _Run(inputs, output, grads)


def _gradcheck_report(exercise: Exercise, case: Case, run: _Run) -> str | None:
    names = [n for n, t in run.inputs.items() if isinstance(t, Tensor) and t.requires_grad]
    if not names or not case.gradcheck:
        return None
    scope = namespace(exercise)
    others = {n: v for n, v in run.inputs.items() if n not in names}
    fresh = [Tensor(run.inputs[n].data.copy(), requires_grad=True) for n in names]

    def fn(*tensors):
        return evaluate(case.expr, case.setup, {**scope, **others, **dict(zip(names, tensors))})

    try:
        gradcheck(fn, fresh, seed=seed_of(case))
    except GradcheckError as err:
        message = str(err).removeprefix("gradcheck failed: ")
        for i, n in enumerate(names):
            message = message.replace(f"input {i}", f"input {n}")
        return "finite differences disagree with your gradient: " + message
    return None


def seed_of(case: Case) -> int:
    """The gradcheck seed of a case (fixed by its expression, so reruns agree)."""
    return sum(map(ord, case.expr)) % 1000


# ------------------------------------------------------------------------------- comparison

def _fmt(x: Any) -> str:
    if isinstance(x, float) or isinstance(x, np.floating):
        return f"{float(x):.6g}"
    text = repr(x)
    return text if len(text) <= 120 else text[:117] + "..."


def _value(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def compare(what: str, expected: Any, got: Any) -> str | None:
    """None when ``got`` matches ``expected`` (arrays to RTOL/ATOL, nan where nan), else one
    sentence naming the worst element and both values.

    >>> import numpy as np
    >>> compare("output", np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    'output: worst element (1,): expected 2, got 2.5'
    >>> compare("output", np.zeros((2, 3)), np.zeros((3, 2)))
    'output: expected shape (2, 3), got (3, 2)'
    """
    expected, got = _value(expected), _value(got)
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        if not isinstance(got, np.ndarray):
            return f"{what}: expected an array of shape {np.shape(expected)}, got {type(got).__name__} {_fmt(got)}"
        if not isinstance(expected, np.ndarray):
            return f"{what}: expected {_fmt(expected)}, got an array of shape {got.shape}"
        if got.shape != expected.shape:
            return f"{what}: expected shape {expected.shape}, got {got.shape}"
        if expected.dtype.kind in "fc" or got.dtype.kind in "fc":
            e, g = expected.astype(np.float64), got.astype(np.float64)
            same_nan = np.isnan(e) & np.isnan(g)
            same_inf = np.isinf(e) & (e == g)
            with np.errstate(invalid="ignore"):
                bad = ~(same_nan | same_inf | (np.abs(g - e) <= ATOL + RTOL * np.abs(e)))
            if not bad.any():
                return None
            with np.errstate(invalid="ignore"):
                excess = np.where(bad, np.nan_to_num(np.abs(g - e), nan=np.inf, posinf=np.inf), -1.0)
            worst = np.unravel_index(int(np.argmax(excess)), e.shape) if e.ndim else ()
            return f"{what}: worst element {tuple(int(i) for i in worst)}: expected {_fmt(e[worst])}, got {_fmt(g[worst])}"
        if not np.array_equal(expected, got):
            where = tuple(int(i) for i in np.argwhere(expected != got)[0])
            return f"{what}: element {where}: expected {expected[where]}, got {got[where]}"
        return None
    if isinstance(expected, dict) and isinstance(got, dict):
        if expected.keys() != got.keys():
            return f"{what}: expected keys {sorted(expected)}, got {sorted(got)}"
        for key in expected:
            problem = compare(f"{what}[{key!r}]", expected[key], got[key])
            if problem:
                return problem
        return None
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        if len(expected) != len(got):
            return f"{what}: expected {len(expected)} items {_fmt(expected)}, got {len(got)}: {_fmt(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare(f"{what}[{i}]", e, g)
            if problem:
                return problem
        return None
    if isinstance(expected, (float, np.floating)) and isinstance(got, (int, float, np.number)):
        if abs(float(got) - float(expected)) <= ATOL + RTOL * abs(float(expected)):
            return None
    elif expected == got and type(expected) is type(got):
        return None
    return f"{what}: expected {_fmt(expected)}, got {_fmt(got)}"


# ------------------------------------------------------------------------------ exercises

@dataclass
class ExerciseResult:
    """The outcome of one exercise: ``status`` is pass, fail, not implemented, missing or
    uses reference; ``message`` the diagnosis (empty when it passed).

    >>> from tinytorch.learn import load_curriculum
    >>> ex = load_curriculum().exercise("autograd", "add_backward")
    >>> ExerciseResult(ex, "pass", "", 2, 2).to_dict()["passed"]
    True
    """
    exercise: Exercise
    status: str
    message: str = ""
    cases_passed: int = 0
    cases: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.exercise.module, "exercise": self.exercise.name, "status": self.status,
                "passed": self.passed, "cases_passed": self.cases_passed, "cases": self.cases,
                "message": self.message}


def _describe_inputs(case: Case, run: _Run | None) -> str:
    if not case.inputs or run is None:
        return ""
    shapes = ", ".join(f"{n} {tuple(np.shape(_value(v)))}" for n, v in run.inputs.items())
    return f" with {shapes}"


def _student_frame(err: BaseException, path: Path) -> str:
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            return f" ({path.name}, line {frame.lineno})"
    return ""


def _recursion(err: RecursionError, path: Path) -> str:
    """What a RecursionError says to the student: that *their* function recursed too deep when
    the frames are theirs, else only where it happened (the cause is elsewhere)."""
    frames = traceback.extract_tb(err.__traceback__)
    theirs = [f for f in frames if Path(f.filename).resolve() == path.resolve()]
    if len(theirs) > len(frames) // 2:
        line = collections.Counter(f.lineno for f in theirs).most_common(1)[0][0]  # the recursive call
        return (f"RecursionError ({path.name}, line {line}): your code called itself deeper than Python "
                f"allows ({sys.getrecursionlimit()} calls); a loop with an explicit stack has no such limit")
    return f"raised RecursionError: {err}{_student_frame(err, path)}"


class ContractError(Exception):
    """What the student's function returned breaks the target's contract in a way the comparison
    would only show as a symptom (a Function's backward returning fewer gradients than the op
    has inputs shows as "gradient of b: got None")."""


def _backward_contract(owner: Any, ctx: Any, out: Any) -> None:
    """Raise `ContractError` when ``out``, what a Function's backward returned, does not give one
    gradient per input that needs one (the engine pairs a tuple's items with the inputs, and
    takes a single array as the first input's gradient)."""
    needs = getattr(ctx, "needs_input_grad", None)
    if not needs or len(needs) < 2:
        return
    grads = out if isinstance(out, tuple) else (out,)
    if len(grads) >= len(needs) or not any(needs[len(grads):]):
        return
    params = [p.name for p in inspect.signature(owner.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:1 + len(needs)]
    inputs = ", ".join(params) if len(params) == len(needs) else f"{len(needs)} inputs"
    what = (f"a tuple of {len(grads)}" if isinstance(out, tuple)
            else f"a single {type(out).__name__}" + (" (return a tuple, not a list)" if isinstance(out, list) else ""))
    raise ContractError(
        f"{owner.__name__}.backward must return one gradient per input of the op: here {len(needs)} "
        f"({inputs}), so a tuple of {len(needs)} with None for an input whose self.needs_input_grad is "
        f"False; yours returned {what}")


class _Watched:
    """The student's function as a check puts it in the library's place.

    It notices the student's own code calling the library's name for what it implements:
    during the check that name holds this very function, so the call would recurse until
    Python stops it. A reference reached by a name the source scan cannot see (``importlib``,
    a ``getattr`` with a built string) is reported as such, not as a RecursionError. For a
    Function's backward it also checks that one gradient comes back per input.
    """

    def __init__(self, exercise: Exercise, fn: Any, path: Path):
        self.exercise, self.path, self.reference_used = exercise, path.resolve(), None
        target = exercise.resolve()
        owner = target.owner if target.owner_name else None
        is_backward = owner is not None and target.attr == "backward" and isinstance(owner, type) \
            and issubclass(owner, autograd.Function)
        local = threading.local()

        @functools.wraps(fn)
        def watched(*args: Any, **kwargs: Any) -> Any:
            active = getattr(local, "active", None)
            if active is None:
                active = local.active = []
            # A method may rightly call itself on another object (a tree of them); on the same
            # object, or a function on anything, the call from the student's own file is the
            # library's version the student reached for.
            key = id(args[0]) if owner is not None and args else None
            if active and (owner is None or key in active):
                caller = sys._getframe(1)
                if Path(caller.f_code.co_filename).resolve() == self.path:
                    self.reference_used = (
                        f"{self.path.name} line {caller.f_lineno} calls the library's {target.qualname} from inside "
                        f"your {exercise.name} (however it reached it: while your code is checked that is your own "
                        "function, so it would call itself forever); write it yourself")
                    raise ReferenceUsed(self.reference_used)
            active.append(key)
            try:
                out = fn(*args, **kwargs)
            finally:
                active.pop()
            if is_backward and args:
                _backward_contract(owner, args[0], out)
            return out

        self.function = watched


#: A case's setup is shown with its expression in a diagnosis up to this many characters.
SHOWN_SETUP = 200


def _shown(case: Case) -> str:
    """A case as a diagnosis names it: its setup statements and expression, or the expression
    alone when the setup is long.

    >>> _shown(Case("graph_order(target(z), z)", setup=("y = x * 2", "z = y * y")))
    'y = x * 2; z = y * y; graph_order(target(z), z)'
    """
    text = "; ".join((*case.setup, case.expr))
    return text if len(text) <= SHOWN_SETUP else case.expr


def _check_case(exercise: Exercise, case: Case, index: int, student_fn: Any, path: Path) -> str | None:
    seed = index + 1
    expected = _run(exercise, case, seed)  # the library's own implementation
    label = f"case {index + 1} `{_shown(case)}`"
    watch = _Watched(exercise, student_fn, path)
    with substituted({exercise.resolve(): watch.function}), np.errstate(all="ignore"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a student's overflow shows as its nan in the diagnosis
        try:
            with time_limit(CASE_SECONDS):
                got = _run(exercise, case, seed)
        except TimeLimitExceeded:
            return f"{label}: still running after {CASE_SECONDS:g} s (a loop that never ends?); stopped"
        except (NotImplementedError, ReferenceUsed):
            raise
        except ContractError as err:
            return f"{label}{_describe_inputs(case, expected)}: {err}"
        except RecursionError as err:
            if watch.reference_used:
                raise ReferenceUsed(watch.reference_used) from None
            return f"{label}{_describe_inputs(case, expected)}: {_recursion(err, path)}"
        except Exception as err:
            if watch.reference_used:  # the student's code caught our ReferenceUsed and went on
                raise ReferenceUsed(watch.reference_used) from None
            return (f"{label}{_describe_inputs(case, expected)}: raised {type(err).__name__}: "
                    f"{err}{_student_frame(err, path)}")
        if watch.reference_used:
            raise ReferenceUsed(watch.reference_used)
        problem = compare("output", expected.output, got.output)
        for name in expected.grads:
            if problem:
                break
            if got.grads.get(name) is None:
                problem = f"gradient of {name}: expected an array, got None"
            else:
                problem = compare(f"gradient of {name}", expected.grads[name], got.grads[name])
        if problem is None and set(got.grads) - set(expected.grads):
            problem = f"gradients for {sorted(set(got.grads) - set(expected.grads))} where none are expected"
        if problem is None:
            return None
        report = _gradcheck_report(exercise, case, got) if "gradient" in problem else None
    text = f"{label}{_describe_inputs(case, expected)}: {problem}"
    return text + (f"; {report}" if report else "")


def check_exercise(exercise: Exercise, student: Any, path: Path, uses: dict[str, list[int]]) -> ExerciseResult:
    """Run every case of ``exercise`` with the student's function in place of the target."""
    n = len(exercise.cases)
    if exercise.name in uses:
        lines = ", ".join(map(str, uses[exercise.name]))
        return ExerciseResult(exercise, "uses reference", f"{path.name} line {lines} uses the library's "
                              f"{exercise.resolve().qualname}; write it yourself", 0, n)
    student_fn = getattr(student, exercise.name, None)
    if not callable(student_fn):
        return ExerciseResult(exercise, "missing", f"{path.name} defines no function {exercise.name}()", 0, n)
    passed, details = 0, []
    for i, case in enumerate(exercise.cases):
        try:
            problem = _check_case(exercise, case, i, student_fn, path)
        except NotImplementedError:
            return ExerciseResult(exercise, "not implemented", f"{exercise.name}() raises NotImplementedError", 0, n)
        except ReferenceUsed as err:
            return ExerciseResult(exercise, "uses reference", str(err), 0, n)
        if problem is None:
            passed += 1
        else:
            details.append(problem)
    if details:
        return ExerciseResult(exercise, "fail", details[0], passed, n, details)
    return ExerciseResult(exercise, "pass", "", passed, n)


def check_module(module: Module | str, directory: str | Path, exercise: str | None = None) -> list[ExerciseResult]:
    """Check the student's file of ``module`` in ``directory`` (all exercises, or one).

    Raises `tinytorch.learn.substitute.StudentFileError` (a ValueError) when the file is missing or
    does not import, ValueError for an unknown module or exercise.

    >>> import tempfile
    >>> from pathlib import Path
    >>> work = Path(tempfile.mkdtemp())
    >>> _ = (work / "autograd.py").write_text("def add_backward(self, grad):\\n    return grad, grad\\n")
    >>> [r.status for r in check_module("autograd", work)][:3]
    ['missing', 'pass', 'missing']
    """
    if isinstance(module, str):
        module = load_curriculum().module(module)
    chosen = [module.exercise(exercise)] if exercise else list(module.exercises)
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"--dir: {directory} is not a directory")
    path = directory / module.filename
    student = load_student_module(path, module)
    uses = reference_uses(path.read_text(encoding="utf-8"), module)
    return [check_exercise(ex, student, path, uses) for ex in chosen]

"""Student files built from the library's own implementations, for testing the checks.

`reference_file(module)` writes what a perfect student would: each target's source under the
exercise's name, with the module's globals available. `PLANTED` holds, per exercise, one
classic mistake as a text edit of that source (a transposed gradient, a missing 1/N, an
off-by-one window, the mask applied after the softmax...).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

from tinytorch.learn.curriculum import Module

PLANTED: dict[str, tuple[str, str]] = {
    # tensor-ops
    "softmax": ("e = x - x.max(axis=axis, keepdims=True)", "e = x.copy()"),  # no max subtracted
    "log_softmax": ("np.exp(shifted), axis=axis", "np.exp(shifted), axis=-1"),  # wrong axis
    "linear": ("out += bias", "out = out + 0"),  # bias forgotten
    "unbroadcast": ("grad = grad.sum(axis=tuple(range(extra)))", "grad = grad[(0,) * extra]"),
    # autograd
    "topological_order": ("return order", "return order[::-1]"),  # children before parents
    "add_backward": ("return grad, grad", "return grad, -grad"),
    "mul_backward": ("grad * self.b if need_a", "grad * self.a if need_a"),
    "matmul_backward": ("grad_b = np.swapaxes(a2, -1, -2) @ grad",  # the transposed gradient
                        "grad_b = np.swapaxes(np.swapaxes(a2, -1, -2) @ grad, -1, -2)"),
    "sum_backward": ("_expand_reduced(grad, self.axes, self.keepdims)", "grad"),
    "mean_backward": (" / grad.dtype.type(self.count)", ""),  # the missing 1/N
    "reshape_backward": ("grad.reshape(self.shape)", "grad.T.reshape(self.shape)"),
    "permute_backward": ("np.argsort([a % grad.ndim for a in self.axes])", "self.axes"),
    "linear_backward": ("grad2d.sum(axis=0)", "grad2d.mean(axis=0)"),
    "embedding_backward": ("np.add.reduceat(flat_grad[order], starts, axis=0)",
                           "flat_grad[order][starts]"),  # repeated ids do not accumulate
    # layers
    "relu_backward": ("out = grad * self.positive", "out = grad + 0 * self.positive"),
    "sigmoid_backward": ("grad * self.out * (1 - self.out)", "grad * self.out"),
    "tanh_backward": ("(1 - self.out * self.out)", "(1 - self.out)"),
    # losses
    "cross_entropy_backward": ("d *= grad / max(self.count, 1)", "d *= grad"),  # the missing 1/N
    "mse_loss": ('sq.mean() if reduction == "mean"', 'sq.sum() / len(sq.data) if reduction == "mean"'),
    "sgd_update": ('buf = state["momentum_buffer"] = g.copy()',
                   'buf = state["momentum_buffer"] = np.zeros_like(g)'),  # the buffer starts at 0
    # training
    "train_step": ("self.optimizer.zero_grad()", "pass"),  # gradients accumulate over steps
    "clip_grad_norm": ("if clip_coef < 1.0:", "if True:"),  # small gradients scaled UP to max_norm
    "warmup_cosine": ("return (step + 1) / (warmup + 1)", "return step / warmup"),  # the first step at 0
    "early_stopping": ("if self.wait > self.patience:", "if self.wait >= self.patience:"),  # one too early
    # data loading
    "loader_len": ("return -(-n // self.batch_size)", "return n // self.batch_size + 1"),  # off by one
    "loader_order": ("return shuffled_order(n, self.seed, epoch)", "return shuffled_order(n, self.seed, 0)"),
    "loader_batches": ("range(0, min(stop, len(order)), self.batch_size)",
                       "range(0, len(order), self.batch_size)"),  # drop_last ignored
    # vision
    "out_size": ("- d * (k - 1) - 1) // s + 1", "- d * (k - 1)) // s + 1"),  # off-by-one window
    "im2col": ("(s_n, sh * s_h, sw * s_w,", "(s_n, s_h, s_w,"),  # the stride ignored
    "max_pool_backward": ("np.where(self.argmax == i * kw + j, g, zero)", "g"),  # to every tap
    "avg_pool_backward": ("gs = g / self.count", "gs = g"),  # the missing 1/N
    "batch_norm_backward": ("- xhat * (sum_gxhat * inv_m).reshape(shape))",
                            "- 0 * xhat)"),  # the variance's dependence on x forgotten
    # language
    "char_fit": ("sorted(set(text))", "list(dict.fromkeys(text))"),  # order of appearance
    "bpe_merge": ("i += 2", "i += 1"),  # overlapping merges
    "causal_bias": ("k=start + 1", "k=start"),  # the diagonal masked too
    "masked_softmax": ("    if bias is not None:\n        scores += bias\n    m = ", "    m = "),  # mask after
    "attention_backward": ("dq = dp @ k * scale if", "dq = dp @ k if"),  # the scale forgotten
    "layer_norm_backward": ("        gx -= correction\n", ""),  # the x̂·mean(g'·x̂) term forgotten
    "mlp_forward": ('approximate="tanh" if self.activation == "gelu_new" else "none"',
                    'approximate="none" if self.activation == "gelu_new" else "tanh"'),  # GELUs swapped
    "block_forward": ("x = x + self.mlp(self.ln2(x))", "x = x + self.mlp(x)"),  # the second norm forgotten
    "gpt_forward": ("pos = np.arange(start, start + T)[None] if mask", "pos = np.arange(T)[None] if mask"),  # cache ignored
    "kv_append": ("self.k[:, :, self.length:end] = k", "self.k[:, :, 0:end - self.length] = k"),  # at 0
    # systems
    "linear_flops": ("OpCount(2 * n * i * o", "OpCount(n * i * o"),  # a multiply-add as 1 FLOP
    "attainable": ("min(self.peak_gflops", "max(self.peak_gflops"),
    "classify": ("intensity < self.ridge_point", "intensity <= self.ridge_point"),  # the ridge itself
    "self_seconds": ("return self.seconds - self.child_seconds", "return self.seconds"),  # children twice
    "backward_charge": ("self.bwd[row] += charged", "self.bwd[row] += seconds"),  # the engine's time lost
    "saved_bytes": ("if isinstance(a, np.ndarray) and id(_root(a)) not in seen:",
                    "if isinstance(a, np.ndarray):"),  # views and inputs counted
    "sampler_indices": ("return order[self.rank:self.total_size:self.num_replicas]",
                        "return order[self.rank * self.num_samples:(self.rank + 1) * self.num_samples]"),
    "bucket_reduce_mean": ("self.buffer *= self.buffer.dtype.type(1.0 / world)", "pass"),  # the missing 1/N
    "round_clamp": ("np.rint(out, out=out)", "np.floor(out + 0.5, out=out)"),  # half up, not to even
    "dequantize": ("(ints - np.float32(q.zero_point)) * np.float32(q.scale)",
                   "ints * np.float32(q.scale) - np.float32(q.zero_point)"),  # the zero point unscaled
    "fake_quantize_backward": ("return grad * self.inside", "return grad"),  # clamped values get gradients
    "pack_int4": ("nibbles[0::2] | (nibbles[1::2] << 4)", "nibbles[1::2] | (nibbles[0::2] << 4)"),
}

#: More mistakes for some exercises: (exercise, the mistake, the edit, words its diagnosis must hold).
#: Each must fail its exercise, and no other, like those above.
MORE_PLANTED: list[tuple[str, str, tuple[str, str], str]] = [
    ("topological_order", "visited checked only when pushing (a student's walk): a shared inner node twice",
     ("        if id(node) in visited:\n            continue\n        visited.add(id(node))\n"
      "        stack.append((node, True))\n        ctx = node._ctx\n        if ctx is not None:\n"
      "            if not hasattr(ctx, \"parents\"):\n                raise RuntimeError(_FREED_GRAPH)\n"
      "            for parent in ctx.parents:",
      "        visited.add(id(node))\n"
      "        stack.append((node, True))\n        ctx = node._ctx\n        if ctx is not None:\n"
      "            if not hasattr(ctx, \"parents\"):\n                raise RuntimeError(_FREED_GRAPH)\n"
      "            for parent in reversed(ctx.parents):"), "is listed 2 times (each tensor once"),
    ("topological_order", "no visited set at all", ("visited.add(id(node))", "pass"), "times (each tensor once"),
    ("topological_order", "the freed graph not checked: an AttributeError, not the RuntimeError",
     ('            if not hasattr(ctx, "parents"):\n                raise RuntimeError(_FREED_GRAPH)\n', ""),
     "raised AttributeError"),
    ("topological_order", "the freed graph walked as if it were a leaf",
     ("raise RuntimeError(_FREED_GRAPH)", "break"), "got 'returns without raising RuntimeError'"),
    ("add_backward", "one array for two inputs", ("return grad, grad", "return grad"),
     "AddFunction.backward must return one gradient per input of the op: here 2 (a, b), so a tuple of 2"),
    ("linear_backward", "no gradient for the bias", ("return grad_x, grad_w, grad_b", "return grad_x, grad_w"),
     "here 3 (x, weight, bias), so a tuple of 3"),
]

# masked_softmax's plant moves the mask after the normalisation (the second half of the edit)
_AFTER = ("    scores /= denom\n    return scores",
          "    scores /= denom\n    if bias is not None:\n        scores += bias\n    return scores")


def _source(exercise) -> str:
    t = exercise.resolve()
    holder = t.owner if t.owner_name else t.module
    source = inspect.getsource(holder)
    tree = ast.parse(source)
    body = tree.body[0].body if t.owner_name else tree.body
    node = next(n for n in body if isinstance(n, ast.FunctionDef) and n.name == t.attr)
    # a student writes a plain function: a property or a static method is one in the library only
    kept = [d for d in node.decorator_list if ast.unparse(d) not in ("property", "staticmethod", "classmethod")]
    start = kept[0].lineno if kept else node.lineno
    lines = source.splitlines()[start - 1:node.end_lineno]
    text = textwrap.dedent("\n".join(lines))
    # a relative import inside the library's function is absolute in a student's file
    package = t.module_name.rsplit(".", 1)[0]
    text = re.sub(r"from \.(\w)", lambda m: f"from {package}.{m.group(1)}", text)
    return text.replace(f"def {t.attr}(", f"def {exercise.name}(", 1)


def reference_file(module: Module, planted: str | None = None, edit: tuple[str, str] | None = None) -> str:
    """A student file for ``module`` holding the library's implementations (one of them, the
    exercise ``planted``, with its mistake: ``edit``, or its `PLANTED` one)."""
    imports = sorted({ex.resolve().module_name for ex in module.exercises})
    head = ["from __future__ import annotations", "", "import importlib", "for _name in " + repr(imports) + ":",
            "    globals().update({k: v for k, v in vars(importlib.import_module(_name)).items()",
            "                      if not k.startswith('__')})",
            "_causal_cache = {}  # a student's file has its own cache, not the library's"]
    parts = []
    for ex in module.exercises:
        text = _source(ex)
        if ex.name == planted:
            old, new = edit or PLANTED[planted]
            assert old in text, f"{planted}: the planted edit no longer matches the library's source"
            text = text.replace(old, new, 1)
            if planted == "masked_softmax" and edit is None:
                assert _AFTER[0] in text
                text = text.replace(*_AFTER)
        parts.append(text)
    return "\n".join(head) + "\n\n\n" + "\n\n\n".join(parts) + "\n"

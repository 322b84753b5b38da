"""nn: Module bookkeeping, layers against closed forms, state dicts, summary, gradchecks."""

import numpy as np
import pytest

from tinytorch.core import Tensor, gradcheck, manual_seed, nn
from tinytorch.core.io import CheckpointError


def rng(seed=0):
    return np.random.default_rng(seed)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
        self.head = nn.Linear(8, 3)
        self.register_buffer("steps", np.zeros(1, dtype=np.float32))

    def forward(self, x):
        return self.head(self.body(x))


def test_named_parameters_follow_pytorch_names_and_layouts():
    net = Net()
    shapes = {name: p.shape for name, p in net.named_parameters()}
    assert shapes == {
        "body.0.weight": (8, 4), "body.0.bias": (8,), "body.2.weight": (8, 8),
        "body.2.bias": (8,), "head.weight": (3, 8), "head.bias": (3,),
    }
    # as in PyTorch: a module's own parameters and buffers come before its children's
    assert list(net.state_dict()) == ["steps"] + list(shapes)
    assert net.num_parameters() == 8 * 4 + 8 + 64 + 8 + 24 + 3


def test_shared_parameter_listed_once():
    a = nn.Linear(3, 3)
    seq = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(seq.parameters())) == 2


def test_train_eval_propagate_to_children():
    net = Net().eval()
    assert all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_linear_matches_closed_form_and_init_bounds():
    manual_seed(1)
    layer = nn.Linear(100, 7)
    bound = 1 / np.sqrt(100)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    # uniform on [-b, b] has std b/sqrt(3)
    assert abs(layer.weight.data.std() - bound / np.sqrt(3)) < 0.1 * bound
    x = rng().normal(size=(5, 100)).astype(np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-5)
    assert nn.Dense is nn.Linear


def test_linear_wrong_last_dim_names_shapes():
    with pytest.raises(ValueError, match=r"Linear expected last dim 128, got \(32, 64\)"):
        nn.Linear(128, 10)(Tensor(np.zeros((32, 64), dtype=np.float32)))


def test_load_state_dict_round_trip_and_in_place():
    a, b = Net(), Net()
    weight_obj = b.head.weight
    b.load_state_dict({k: v.copy() for k, v in a.state_dict().items()})
    assert b.head.weight is weight_obj
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v)


def test_load_state_dict_errors_name_keys():
    net = Net()
    state = {k: v.copy() for k, v in net.state_dict().items()}
    missing = dict(state)
    del missing["head.bias"]
    with pytest.raises(CheckpointError, match="head.bias"):
        net.load_state_dict(missing)
    with pytest.raises(CheckpointError, match="extra.weight"):
        net.load_state_dict({**state, "extra.weight": np.zeros(2)})
    bad = dict(state)
    bad["head.weight"] = np.zeros((4, 8), dtype=np.float32)
    with pytest.raises(CheckpointError, match=r"head.weight.*\(3, 8\).*\(4, 8\)"):
        net.load_state_dict(bad)
    missing_keys, unexpected = net.load_state_dict(missing, strict=False)
    assert missing_keys == ["head.bias"] and unexpected == []


def test_module_gradcheck_float64():
    manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.LayerNorm(5), nn.GELU(), nn.Linear(5, 2)).double()
    x = Tensor(rng().normal(size=(4, 3)), requires_grad=True)
    params = list(net.parameters())

    def f(x, *ps):
        return net(x)

    assert gradcheck(f, [x, *params])


def test_embedding_and_layernorm_and_dropout_modes():
    manual_seed(0)
    emb = nn.Embedding(10, 4)
    ids = np.array([[1, 2], [2, 9]])
    np.testing.assert_array_equal(emb(ids).data, emb.weight.data[ids])
    with pytest.raises(IndexError, match="index 10 is out of range for 10 embeddings"):
        emb(np.array([10]))
    ln = nn.LayerNorm(6)
    y = ln(Tensor(rng().normal(3, 2, size=(4, 6)).astype(np.float32))).data
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1, atol=1e-3)
    drop = nn.Dropout(0.5)
    x = Tensor(np.ones((1000,), dtype=np.float32))
    kept = drop(x).data
    assert set(np.unique(kept)) <= {0.0, 2.0} and 0.4 < (kept > 0).mean() < 0.6
    drop.eval()
    np.testing.assert_array_equal(drop(x).data, x.data)


def test_activations_and_losses_closed_form():
    x = Tensor(np.array([-1.0, 0.0, 2.0], dtype=np.float32))
    np.testing.assert_allclose(nn.ReLU()(x).data, [0, 0, 2])
    np.testing.assert_allclose(nn.Sigmoid()(x).data, 1 / (1 + np.exp([1.0, 0.0, -2.0])), rtol=1e-6)
    np.testing.assert_allclose(nn.Tanh()(x).data, np.tanh([-1.0, 0.0, 2.0]), rtol=1e-6)
    np.testing.assert_allclose(nn.Softmax(dim=-1)(x).data.sum(), 1.0, rtol=1e-6)
    loss = nn.CrossEntropyLoss()(Tensor(np.zeros((4, 10), dtype=np.float32)), np.arange(4))
    assert abs(loss.item() - np.log(10)) < 1e-6
    mse = nn.MSELoss()(Tensor(np.array([1.0, 3.0], dtype=np.float32)), np.array([0.0, 0.0]))
    assert abs(mse.item() - 5.0) < 1e-6


def test_init_functions_statistics():
    manual_seed(0)
    w = nn.Parameter(np.empty((256, 512), dtype=np.float32))
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.data.std() - np.sqrt(2 / 512)) < 0.05 * np.sqrt(2 / 512)
    nn.init.xavier_uniform_(w)
    bound = np.sqrt(6 / (256 + 512))
    assert np.abs(w.data).max() <= bound and w.data.dtype == np.float32


def test_summary_counts_and_shapes():
    net = Net()
    s = nn.summary(net, (2, 4))
    rows = {r.name: r for r in s.rows}
    assert rows["body.0"].output_shape == (2, 8)
    assert rows["head"].output_shape == (2, 3)
    assert s.total_params == net.num_parameters() == s.trainable_params
    text = str(s)
    assert "Linear: 2-1" in text and f"Total params: {s.total_params:,}" in text
    assert net.training  # restored


def test_summary_rows_in_call_order_with_repeated_calls_and_nested_params():
    shared = nn.Linear(4, 4)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Sequential(shared, nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.inner(self.inner(x)))

    s = nn.summary(Twice(), (3, 4))
    # pre-order per call: a container's row comes before its children's, every call a row
    assert [r.name for r in s.rows] == ["inner", "inner.0", "inner.1", "inner", "inner.0",
                                        "inner.1", "head"]
    assert [r.depth for r in s.rows[:3]] == [1, 2, 2]
    assert s.rows[0].params == 20 and s.rows[0].own_params == 0 and s.rows[0].has_children
    assert s.rows[-1].output_shape == (3, 2) and s.total_params == 20 + 10


def test_module_tracker_times_calls_with_a_given_clock():
    from tinytorch.core.nn.tracker import ModuleTracker

    now = [0.0]

    class Work(nn.Module):
        def __init__(self, seconds, child=None):
            super().__init__()
            self.seconds, self.child = seconds, child

        def forward(self, x):
            now[0] += self.seconds
            return self.child(x) if self.child is not None else x

    model = Work(1.0, Work(4.0))
    exits = []
    with ModuleTracker(model, on_exit=exits.append, clock=lambda: now[0]) as tracker:
        model(Tensor(np.ones(2)))
    assert [c.name for c in exits] == ["child", ""]  # children finish first
    root, child = tracker.calls
    assert (root.seconds, root.self_seconds, child.seconds, child.self_seconds) == (5.0, 1.0, 4.0, 4.0)
    assert child.parent is root and child.depth == 1 and tracker.current is None
    assert not model._forward_hooks and not model._forward_pre_hooks  # removed on exit


def test_sequential_rejects_non_modules_and_repr():
    with pytest.raises(TypeError, match="argument 1 must be a Module"):
        nn.Sequential(nn.ReLU(), 3)
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in repr(nn.Sequential(nn.Linear(2, 3)))


def test_module_without_super_init_explains():
    class Bad(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Bad()


def test_registered_names_are_attributes_whatever_writes_the_store():
    """Parameters, buffers and children are plain attributes (a fast read), kept equal to the
    stores by every way of writing them: setattr, the store itself (pruning and quantization
    swap entries in place), pop/del/clear/update, register_*, and in a deepcopy."""
    import copy

    layer = nn.Linear(3, 2)
    assert layer.__dict__["weight"] is layer._parameters["weight"]  # found without __getattr__
    swapped = nn.Parameter(np.zeros((2, 3), dtype=np.float32))
    layer._parameters["weight"] = swapped
    assert layer.weight is swapped
    masked = Tensor(np.ones((2, 3), dtype=np.float32))
    layer._parameters.pop("weight")
    with pytest.raises(AttributeError, match="weight"):
        layer.weight  # noqa: B018 - the attribute went with the entry
    layer.weight = masked  # a plain Tensor is an ordinary attribute, not a parameter
    assert layer.weight is masked and "weight" not in layer._parameters
    layer.weight = swapped
    assert layer.weight is swapped and layer._parameters["weight"] is swapped
    del layer.bias
    assert not hasattr(layer, "bias") and "bias" not in layer._parameters
    layer._parameters.update(bias=nn.Parameter(np.ones(2, dtype=np.float32)))
    assert layer.bias is layer._parameters["bias"]
    layer._parameters.setdefault("extra", nn.Parameter(np.ones(1, dtype=np.float32)))
    assert layer.extra is layer._parameters["extra"]
    layer._parameters.popitem()
    assert not hasattr(layer, "extra")
    norm = nn.BatchNorm1d(2)
    norm._buffers.clear()
    assert not hasattr(norm, "running_mean")
    norm.register_buffer("running_mean", np.full(2, 5.0, dtype=np.float32))
    assert norm.running_mean.data.tolist() == [5.0, 5.0]

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    twin = copy.deepcopy(model)
    fresh = nn.Parameter(np.full((2, 2), 7.0, dtype=np.float32))
    twin[0]._parameters["weight"] = fresh  # the copy's store writes the copy's attributes
    assert twin[0].weight is fresh and model[0].weight is not fresh
    assert twin[1].running_var is twin[1]._buffers["running_var"] is not model[1].running_var
    twin._modules["0"] = nn.Identity()
    assert isinstance(twin[0], nn.Identity) and isinstance(getattr(twin, "0"), nn.Identity)

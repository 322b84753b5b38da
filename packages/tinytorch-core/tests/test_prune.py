"""Pruning (``tinytorch.core.nn.utils.prune``): which entries each method prunes, masks through
training, ``remove``, and structured shrinking against the masked model."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tinytorch.core import Tensor, manual_seed, nn, no_grad, optim
from tinytorch.core.nn.utils import prune


def linear(weight, bias=None) -> nn.Linear:
    weight = np.asarray(weight, dtype=np.float32)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.weight.data[...] = weight
    if bias is not None:
        layer.bias.data[...] = bias
    return layer


# ----------------------------------------------------------------------------- unstructured

def test_l1_unstructured_prunes_the_smallest_magnitudes_and_ties_by_lower_index():
    layer = linear([[0.3, -0.1, 2.0, 0.2], [-0.2, 5.0, 0.1, -4.0]])
    prune.l1_unstructured(layer, "weight", amount=4)
    # |w| sorted: 0.1 (0,1), 0.1 (1,2), 0.2 (0,3), 0.2 (1,0) -- both ties at 0.2 are cut here,
    # the next, 0.3, stays
    assert layer.weight_mask.numpy().tolist() == [[1, 0, 1, 0], [0, 1, 0, 1]]
    # a tie across the cut: amount 3 takes 0.1, 0.1 and the first 0.2 in C order, (0, 3)
    tie = linear([[0.3, -0.1, 2.0, 0.2], [-0.2, 5.0, 0.1, -4.0]])
    prune.l1_unstructured(tie, "weight", amount=3)
    assert tie.weight_mask.numpy().tolist() == [[1, 0, 1, 0], [1, 1, 0, 1]]
    np.testing.assert_allclose(layer.weight.numpy(), [[0.3, 0, 2.0, 0], [0, 5.0, 0, -4.0]])


def test_a_fraction_rounds_like_pytorch_and_a_second_pruning_takes_from_what_is_left():
    layer = linear(np.arange(1, 11, dtype=np.float32).reshape(2, 5))
    prune.l1_unstructured(layer, "weight", amount=0.25)  # round(2.5) = 2 (banker's, as torch)
    assert int((layer.weight_mask.numpy() == 0).sum()) == 2
    prune.l1_unstructured(layer, "weight", amount=0.5)  # half of the 8 left: 4 more, the smallest
    assert layer.weight_mask.numpy().reshape(-1).tolist() == [0] * 6 + [1] * 4
    assert len(layer._forward_pre_hooks) == 1


def test_random_unstructured_prunes_exactly_amount_and_follows_the_generator():
    manual_seed(3)
    a = prune.random_unstructured(nn.Linear(10, 10), "weight", amount=0.37)
    manual_seed(3)
    b = prune.random_unstructured(nn.Linear(10, 10), "weight", amount=0.37)
    assert int((a.weight_mask.numpy() == 0).sum()) == 37
    assert np.array_equal(a.weight_mask.numpy(), b.weight_mask.numpy())


def test_global_unstructured_uses_one_threshold_over_all_modules():
    rng = np.random.default_rng(0)
    a = linear(rng.normal(size=(6, 5)))
    b = linear(3 * rng.normal(size=(4, 8)))  # larger weights: fewer of them go
    values = np.concatenate([a.weight.numpy().ravel(), b.weight.numpy().ravel()])
    threshold = np.sort(np.abs(values))[31]  # 32 of 62 pruned
    prune.global_unstructured([(a, "weight"), (b, "weight")], prune.L1Unstructured, amount=32)
    for layer in (a, b):
        w = np.abs(layer.weight_orig.numpy())
        assert np.array_equal(layer.weight_mask.numpy() == 0, w <= threshold)
    pruned_a, pruned_b = (int((m.weight_mask.numpy() == 0).sum()) for m in (a, b))
    assert pruned_a + pruned_b == 32 and pruned_a / a.weight.size > pruned_b / b.weight.size


def test_ln_structured_prunes_whole_slices_along_the_given_dim():
    w = np.array([[1.0, 2.0, 0.2], [0.5, 0.5, 0.5], [-4.0, 3.0, 0.1]], dtype=np.float32)
    rows = prune.ln_structured(linear(w), "weight", amount=1, n=2, dim=0)  # row L2: 2.24, 0.87, 5.0
    assert rows.weight_mask.numpy().tolist() == [[1, 1, 1], [0, 0, 0], [1, 1, 1]]
    cols = prune.ln_structured(linear(w), "weight", amount=1, n=1, dim=1)  # column L1: 5.5, 5.5, 0.8
    assert cols.weight_mask.numpy().tolist() == [[1, 1, 0]] * 3
    inf = prune.ln_structured(linear(w), "weight", amount=2, n=float("inf"), dim=-1)  # max: 4, 3, .5
    assert inf.weight_mask.numpy().tolist() == [[1, 0, 0]] * 3
    conv_like = nn.Linear(2, 2)
    conv_like.weight = nn.Parameter(np.arange(24, dtype=np.float32).reshape(4, 3, 2) - 2)
    prune.ln_structured(conv_like, "weight", amount=2, n=1, dim=0)  # channel 0 (|-2..3|) and 1 go
    assert conv_like.weight_mask.numpy().sum(axis=(1, 2)).tolist() == [0, 0, 6, 6]


def test_identity_and_custom_from_mask():
    layer = prune.identity(linear([[1.0, 2.0]], bias=[0.5]), "weight")
    assert layer.weight.numpy().tolist() == [[1.0, 2.0]] and prune.is_pruned(layer)
    prune.custom_from_mask(layer, "weight", np.array([[1, 0]]))
    assert layer.weight.numpy().tolist() == [[1.0, 0.0]]


# ----------------------------------------------------------------------------- reparametrization

def test_pruning_keeps_the_parameter_object_and_recomputes_the_weight_before_each_forward():
    layer = linear([[1.0, -2.0, 3.0]], bias=[0.0])
    param = layer.weight
    prune.l1_unstructured(layer, "weight", amount=1)
    assert layer.weight_orig is param
    assert [n for n, _ in layer.named_parameters()] == ["bias", "weight_orig"]
    assert sorted(layer.state_dict()) == ["bias", "weight_mask", "weight_orig"]
    param.data[...] = [[10.0, 20.0, 30.0]]  # as an optimizer step would
    y = layer(Tensor(np.ones((1, 3), dtype=np.float32)))
    assert y.numpy().tolist() == [[50.0]]  # 20 + 30: the forward saw the new values, still masked


def test_masked_weights_stay_zero_through_adamw_weight_decay_and_momentum():
    manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    prune.ln_structured(model[2], "weight", amount=1, n=2, dim=0)
    masks = [model[0].weight_mask.numpy().copy(), model[2].weight_mask.numpy().copy()]
    opt = optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5, betas=(0.9, 0.999))
    x = Tensor(np.random.default_rng(1).normal(size=(16, 6)).astype(np.float32))
    before = model[0].weight_orig.numpy().copy()
    for _ in range(5):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        assert np.all(model[0].weight_orig.grad[masks[0] == 0] == 0)  # the mask blocks the gradient
        opt.step()
    model(x)  # the pre-hook recomputes the weights
    for layer, mask in zip((model[0], model[2]), masks):
        assert np.all(layer.weight.numpy()[mask == 0] == 0)
        assert np.any(layer.weight.numpy()[mask == 1] != 0)
    # weight decay did move the hidden originals (so the zeros come from the mask, not luck)
    moved = model[0].weight_orig.numpy()[masks[0] == 0] != before[masks[0] == 0]
    assert moved.all()


def test_remove_makes_the_pruning_permanent():
    layer = linear([[1.0, -0.5, 3.0, 0.1]], bias=[0.2])
    param = layer.weight
    prune.l1_unstructured(layer, "weight", amount=2)
    prune.remove(layer, "weight")
    assert layer.weight is param and not prune.is_pruned(layer)
    assert sorted(layer.state_dict()) == ["bias", "weight"] and not layer._forward_pre_hooks
    assert layer.weight.numpy().tolist() == [[1.0, 0.0, 3.0, 0.0]]
    param.data[0, 1] = 7.0  # nothing masks it any more
    assert layer(Tensor(np.array([[0.0, 1.0, 0.0, 0.0]], dtype=np.float32))).item() == pytest.approx(7.2)


def test_is_pruned_looks_into_submodules():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)))
    assert not prune.is_pruned(model)
    prune.random_unstructured(model[1][0], "bias", amount=1)
    assert prune.is_pruned(model) and not prune.is_pruned(model[0])


@pytest.mark.parametrize("call, match", [
    (lambda m: prune.l1_unstructured(m, "weight", amount=1.5), "amount"),
    (lambda m: prune.l1_unstructured(m, "weight", amount=-0.1), "amount"),
    (lambda m: prune.l1_unstructured(m, "weight", amount=7), "amount 7 is more than the 6"),
    (lambda m: prune.l1_unstructured(m, "weight", amount=True), "amount"),
    (lambda m: prune.random_unstructured(m, "wieght", amount=0.5), "name 'wieght'.*weight, bias"),
    (lambda m: prune.ln_structured(m, "weight", amount=3, n=2, dim=0), "amount 3 is more than the 2"),
    (lambda m: prune.ln_structured(m, "weight", amount=1, n=2, dim=2), "dim"),
    (lambda m: prune.ln_structured(m, "weight", amount=1, n=0, dim=0), "n must be"),
    (lambda m: prune.remove(m, "weight"), "not pruned"),
    (lambda m: prune.global_unstructured([(m, "weight")], prune.LnStructured, amount=1), "pruning_method"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(nn.Linear(3, 2))


# ----------------------------------------------------------------------------- structured

def _mlp() -> nn.Sequential:
    manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(12, 9), nn.GELU(), nn.Linear(9, 4))
    bn = model[1]
    rng = np.random.default_rng(0)
    bn.running_mean.data[...] = rng.normal(size=12)
    bn.running_var.data[...] = rng.uniform(0.5, 2.0, size=12)
    bn.weight.data[...] = rng.normal(size=12)
    bn.bias.data[...] = rng.normal(size=12)
    return model


def test_shrinking_gives_the_outputs_of_the_masked_model():
    model = _mlp()
    x = Tensor(np.random.default_rng(2).normal(size=(7, 5)).astype(np.float32))
    masked = copy.deepcopy(model)
    prune.mask_groups(masked, x, amount=0.5)
    small = copy.deepcopy(masked)
    assert prune.shrink(small, x) == [{"group": "0", "before": 12, "after": 6},
                                      {"group": "4", "before": 9, "after": 5}]
    assert (small[0].weight.shape, small[1].running_var.shape, small[4].weight.shape,
            small[6].weight.shape) == ((6, 5), (6,), (5, 6), (4, 5))
    assert small[1].num_features == 6 and small[4].in_features == 6 and small[6].in_features == 5
    for m in (model, masked, small):
        m.eval()
    with no_grad():
        want, got, full = masked(x).numpy(), small(x).numpy(), model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(full - want).max() > 1e-2  # the masks did change the function


def test_shrink_with_an_amount_drops_the_lowest_ranked_channels():
    model = nn.Sequential(nn.Linear(2, 4, bias=False), nn.ReLU(), nn.Linear(4, 1, bias=False))
    model[0].weight.data[...] = [[1, 1], [0.1, 0], [-3, 0], [0.2, 0.2]]  # L1 norms 2, .1, 3, .4
    model[2].weight.data[...] = [[1, 2, 3, 4]]
    prune.shrink(model, Tensor(np.zeros((1, 2), dtype=np.float32)), amount=2)
    assert model[0].weight.numpy().tolist() == [[1, 1], [-3, 0]]
    assert model[2].weight.numpy().tolist() == [[1, 3]]


def test_batchnorm_scale_enters_the_ranking():
    model = nn.Sequential(nn.Linear(1, 3, bias=False), nn.BatchNorm1d(3), nn.Linear(3, 1))
    model[0].weight.data[...] = [[1.0], [2.0], [3.0]]
    model[1].weight.data[...] = [1.0, 1.0, 0.01]  # channel 2 leaves BatchNorm the smallest
    group = prune.structured_groups(model, Tensor(np.ones((2, 1), dtype=np.float32)))[0]
    np.testing.assert_allclose(group.importance(), [1, 2, 0.03] / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_a_flatten_maps_each_channel_to_its_block_of_columns():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    x = Tensor(np.random.default_rng(0).normal(size=(5, 2, 3)).astype(np.float32))  # (N, 2, 4) after fc
    assert prune.structured_groups(model, x) == []  # the channels are on the last axis, not 1


def test_branches_and_the_model_output_form_no_group():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act, self.out = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4)

        def forward(self, x):
            h = self.act(self.fc(x))
            return self.out(h) + h  # h is read twice: cutting its channels would change the sum

    x = Tensor(np.ones((2, 4), dtype=np.float32))
    assert prune.structured_groups(Residual(), x) == []
    assert prune.structured_groups(nn.Linear(4, 3), x) == []


def test_shrink_refuses_to_empty_a_group():
    with pytest.raises(ValueError, match="amount 1.0 would remove all 4 channels"):
        prune.shrink(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)),
                     Tensor(np.zeros((1, 2), dtype=np.float32)), amount=1.0)


def test_shrinking_leaves_training_modes_and_batchnorm_statistics_alone():
    model = _mlp().train()
    model[3].eval()
    stats = model[1].running_mean.numpy().copy()
    prune.structured_groups(model, Tensor(np.ones((4, 5), dtype=np.float32)))
    assert model.training and model[1].training and not model[3].training
    assert np.array_equal(model[1].running_mean.numpy(), stats)


# ----------------------------------------------------------------------------- checkpoints

def test_a_pruned_checkpoint_saves_with_its_masks_loads_back_and_summary_reports_it(tmp_path):
    import json

    from click.testing import CliRunner

    from tinytorch.core.checkpoint import load_model_state, save_model_state
    from tito.main import cli

    manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    prune.global_unstructured([(model[0], "weight"), (model[2], "weight")], prune.L1Unstructured, amount=150)
    path = tmp_path / "pruned.safetensors"
    save_model_state(path, model)

    # load: reparametrize the same tensors first (as in PyTorch), then the state loads one to one
    again = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    for i in (0, 2):
        prune.identity(again[i], "weight")
    again.load_state_dict(load_model_state(path)[0])
    x = Tensor(np.ones((1, 10), dtype=np.float32))
    assert np.array_equal(again(x).numpy(), model(x).numpy())

    info = json.loads(CliRunner().invoke(cli, ["core", "summary", str(path), "--json"]).output)
    zeros = [int((m.weight_mask.numpy() == 0).sum()) for m in (model[0], model[2])]
    assert info["pruned"] == [{"parameter": "model.0.weight", "elements": 200, "pruned": zeros[0]},
                              {"parameter": "model.2.weight", "elements": 100, "pruned": zeros[1]}]
    assert sum(zeros) == 150 and info["parameters"] == 10 * 20 + 20 + 20 * 5 + 5  # masks not counted
    text = CliRunner().invoke(cli, ["core", "summary", str(path)]).output
    assert "pruned: 2 tensors with masks, 150 of 300 weights zero (50.0%)" in text
    row = next(line.split() for line in text.splitlines() if line.strip().startswith("model.0.weight"))
    assert row == ["model.0.weight", "200", f"{zeros[0] / 200:.1%}"]

    prune.remove(model[0], "weight")
    prune.remove(model[2], "weight")
    save_model_state(path, model)  # after remove: a dense checkpoint, nothing to report
    assert json.loads(CliRunner().invoke(cli, ["core", "summary", str(path), "--json"]).output)["pruned"] == []

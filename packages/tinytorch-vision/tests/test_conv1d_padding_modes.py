"""Conv1d, Conv2d(padding_mode=...), functional.pad and BatchNorm2d(bias=False), as torch.nn.

Forward values are checked against NumPy written here (np.pad's modes and a direct sum over
kernel taps); gradients by float64 finite differences with a random upstream gradient;
state dicts in torch's names, shapes and dtypes load strictly. scripts/compare_torch_layers.py
compares the same layers with torch live.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, gradcheck
from tinytorch.vision import BatchNorm2d, Conv1d, Conv2d
from tinytorch.vision import functional as VF

RNG = np.random.default_rng(77)
MODES = ("zeros", "reflect", "replicate", "circular")
NP_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _t(*shape):
    return Tensor(RNG.normal(size=shape), requires_grad=True)


def _direct_conv2d(xp, w, b, stride, dilation, groups):
    """Cross-correlation of an already padded NCHW array, as a sum over kernel taps."""
    n, cin, h, wd = xp.shape
    cout, cin_g, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, cout, ho, wo))
    per_group = cout // groups
    for o in range(cout):
        g = o // per_group
        for i in range(kh):
            for j in range(kw):
                window = xp[:, g * cin_g:(g + 1) * cin_g, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                            j * dw:j * dw + sw * (wo - 1) + 1:sw]
                out[:, o] += np.einsum("nchw,c->nhw", window, w[o, :, i, j])
    return out if b is None else out + b[None, :, None, None]


# ----------------------------------------------------------------------------- pad


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_matches_numpys_modes_and_gradchecks(mode):
    x = _t(2, 3, 4, 5)
    pad = (2, 1, 3, 0)  # last axis (2, 1), the one before (3, 0)
    np_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    expected = np.pad(x.data, ((0, 0), (0, 0), (3, 0), (2, 1)), mode=np_mode)
    np.testing.assert_array_equal(VF.pad(x, pad, mode=mode).numpy(), expected)
    assert gradcheck(lambda x: VF.pad(x, pad, mode=mode), [x])


def test_pad_literals_and_constant_value():
    x = Tensor(np.array([[1.0, 2.0, 3.0]]))
    assert VF.pad(x, (2, 2), mode="reflect").tolist() == [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]]
    assert VF.pad(x, (3, 3), mode="circular").tolist() == [[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0]]
    assert VF.pad(x, (1, 0), value=-5.0).tolist() == [[-5.0, 1.0, 2.0, 3.0]]


def test_pad_gradient_of_replicate_collects_every_copy_of_the_edge():
    x = Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
    VF.pad(x, (3, 1), mode="replicate").sum().backward()  # the left edge appears 4 times
    assert x.grad.tolist() == [[4.0, 2.0]]


@pytest.mark.parametrize("kwargs,match", [
    (dict(pad=(2, 2), mode="reflect"), r"reflect padding \(2, 2\) of axis 3 must be less than its size 2"),
    (dict(pad=(3, 0), mode="circular"), r"circular padding \(3, 0\) of axis 3 must be at most its size 2"),
    (dict(pad=(1, 1), mode="wrap"), "mode must be one of constant, reflect, replicate, circular, got 'wrap'"),
    (dict(pad=(1, -1)), "non-negative integers"),
    (dict(pad=(1, 1, 1)), "pairs"),
    (dict(pad=(1, 1), mode="reflect", value=1.0), "value is only used with mode='constant'"),
])
def test_pad_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VF.pad(Tensor(np.zeros((1, 1, 2, 2))), **kwargs)


def test_circular_padding_equal_to_the_size_is_allowed():
    assert VF.pad(Tensor(np.zeros((1, 1, 2, 2))), (2, 2), mode="circular").shape == (1, 1, 2, 6)


# ----------------------------------------------------------------------------- Conv2d padding_mode


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_padding_mode_forward_is_the_conv_of_the_padded_input(mode):
    conv = Conv2d(4, 6, 3, stride=(1, 2), padding=(2, 1), groups=2, padding_mode=mode, dtype=np.float64)
    x = RNG.normal(size=(2, 4, 5, 7))
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (1, 1)), mode=NP_MODE[mode])
    expected = _direct_conv2d(xp, conv.weight.data, conv.bias.data, (1, 2), (1, 1), 2)
    np.testing.assert_allclose(conv(Tensor(x)).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_padding_mode_gradcheck(mode, groups):
    conv = Conv2d(4, 4, (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=groups,
                  padding_mode=mode, dtype=np.float64)
    x = _t(2, 4, 5, 6)
    assert gradcheck(lambda x, w, b: conv(x), [x, conv.weight, conv.bias])


def test_conv2d_same_with_an_even_kernel_pads_the_extra_row_and_column_after():
    conv = Conv2d(2, 3, (4, 2), padding="same", dtype=np.float64)
    x = RNG.normal(size=(1, 2, 6, 5))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1)))  # total 3 -> (1, 2); total 1 -> (0, 1)
    expected = _direct_conv2d(xp, conv.weight.data, conv.bias.data, (1, 1), (1, 1), 1)
    np.testing.assert_allclose(conv(Tensor(x)).numpy(), expected, atol=1e-12)
    xt = Tensor(x, requires_grad=True)
    assert gradcheck(lambda x, w: conv(x), [xt, conv.weight])


def test_conv2d_padding_mode_errors_as_pytorch():
    with pytest.raises(ValueError, match="padding_mode must be one of zeros, reflect, replicate, circular, got 'mirror'"):
        Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"reflect padding \(3, 3\) of axis 3 must be less than its size 3"):
        Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(Tensor(np.zeros((1, 1, 3, 3), np.float32)))
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1, got stride \(2, 2\)"):
        Conv2d(1, 1, 3, stride=2, padding="same")


def test_conv2d_repr_names_the_padding_mode():
    assert "padding_mode=circular" in repr(Conv2d(1, 2, 3, padding=1, padding_mode="circular"))
    assert "padding_mode" not in repr(Conv2d(1, 2, 3, padding=1))


# ----------------------------------------------------------------------------- Conv1d


def _direct_conv1d(xp, w, b, stride, dilation, groups):
    return _direct_conv2d(xp[:, :, None, :], w[:, :, None, :], b, (1, stride), (1, dilation), groups)[:, :, 0]


@pytest.mark.parametrize("mode", MODES)
def test_conv1d_forward_closed_form(mode):
    conv = Conv1d(4, 6, 3, stride=2, padding=2, dilation=1, groups=2, padding_mode=mode, dtype=np.float64)
    x = RNG.normal(size=(2, 4, 9))
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2)), mode=NP_MODE[mode])
    expected = _direct_conv1d(xp, conv.weight.data, conv.bias.data, 2, 1, 2)
    out = conv(Tensor(x))
    assert out.shape == (2, 6, 6)  # (9 + 2·2 - 1·(3 - 1) - 1) // 2 + 1
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


def test_conv1d_literal():
    conv = Conv1d(1, 1, 2, bias=False, dtype=np.float64)
    conv.load_state_dict({"weight": np.array([[[1.0, -1.0]]])})
    assert conv(Tensor(np.array([[[1.0, 4.0, 9.0, 16.0]]]))).tolist() == [[[-3.0, -5.0, -7.0]]]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("groups", [1, 2])
def test_conv1d_gradcheck(mode, groups):
    conv = Conv1d(4, 6, 3, padding="same", dilation=2, groups=groups, padding_mode=mode, dtype=np.float64)
    x = _t(2, 4, 7)
    assert conv(x).shape == (2, 6, 7)
    assert gradcheck(lambda x, w, b: conv(x), [x, conv.weight, conv.bias])


def test_conv1d_strided_without_bias_gradcheck():
    conv = Conv1d(3, 2, 4, stride=3, padding=1, bias=False, dtype=np.float64)
    x = _t(2, 3, 11)
    assert gradcheck(lambda x, w: conv(x), [x, conv.weight])


def test_conv1d_loads_a_torch_state_dict_strictly():
    # {k: v.numpy() for k, v in torch.nn.Conv1d(4, 6, 3, groups=2).state_dict().items()}
    state = {"weight": RNG.normal(size=(6, 2, 3)).astype(np.float32),
             "bias": RNG.normal(size=6).astype(np.float32)}
    conv = Conv1d(4, 6, 3, groups=2)
    assert {k: (v.shape, v.dtype) for k, v in conv.state_dict().items()} == \
        {k: (v.shape, v.dtype) for k, v in state.items()}
    conv.load_state_dict(state, strict=True)
    x = RNG.normal(size=(1, 4, 5)).astype(np.float32)
    expected = _direct_conv1d(x.astype(np.float64), state["weight"].astype(np.float64),
                              state["bias"].astype(np.float64), 1, 1, 2)
    np.testing.assert_allclose(conv(Tensor(x)).numpy(), expected, atol=1e-5)


def test_conv1d_bad_input():
    conv = Conv1d(2, 2, 3)
    with pytest.raises(ValueError, match=r"Conv1d expected input \(N, 2, L\), got \(2, 3, 5\)"):
        conv(Tensor(np.zeros((2, 3, 5), np.float32)))
    with pytest.raises(ValueError, match=r"Conv1d expected input \(N, 2, L\), got \(2, 2, 5, 5\)"):
        conv(Tensor(np.zeros((2, 2, 5, 5), np.float32)))
    with pytest.raises(ValueError, match="kernel_size must be an integer >= 1"):
        Conv1d(2, 2, (3, 3))
    with pytest.raises(ValueError, match="in_channels 3 and out_channels 2 must both be divisible by groups 2"):
        Conv1d(3, 2, 3, groups=2)


# ----------------------------------------------------------------------------- BatchNorm2d(bias=False)


def test_batchnorm2d_bias_false_matches_the_formula_and_has_no_bias_key():
    bn = BatchNorm2d(3, bias=False, dtype=np.float64)
    assert sorted(bn.state_dict()) == ["num_batches_tracked", "running_mean", "running_var", "weight"]
    bn.weight.data[...] = [1.0, 2.0, -1.0]
    x = RNG.normal(size=(4, 3, 2, 2))
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    expected = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5) * bn.weight.data[None, :, None, None]
    np.testing.assert_allclose(bn(Tensor(x)).numpy(), expected, atol=1e-12)

"""Spatial layers: forward against naive loops, float64 gradient checks, shapes and errors."""

import ctypes
import ctypes.util
import platform

import numpy as np
import pytest

from tinytorch.core import Tensor, gradcheck, nn
from tinytorch.vision import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2D,
    Conv2d,
    GlobalAvgPool2d,
    MaxPool2D,
    MaxPool2d,
)
from tinytorch.vision import functional as VF

rng = np.random.default_rng(0)


def t64(*shape, grad=True):
    return Tensor(rng.normal(size=shape), requires_grad=grad)


def naive_conv(x, w, b, stride, padding, dilation, groups):
    """The definition of a 2-D cross-correlation, one output pixel at a time."""
    n, cin, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, cout, ho, wo))
    per_group = cout // groups
    for o in range(cout):
        gi = o // per_group
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, gi * cg:(gi + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                           j * sw:j * sw + dw * (kw - 1) + 1:dw]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + (b[o] if b is not None else 0)
    return out


CONV_CASES = [  # stride, padding, dilation, groups
    ((1, 1), (0, 0), (1, 1), 1),
    ((1, 1), (1, 1), (1, 1), 1),
    ((2, 1), (1, 2), (1, 1), 1),
    ((1, 1), (2, 1), (2, 1), 1),
    ((2, 2), (1, 1), (1, 2), 2),
    ((1, 1), (1, 1), (1, 1), 4),  # depthwise
    ((1, 1), (2, 2), (1, 1), 1),  # padding wider than the 2-wide kernel: dx by col2im, not full conv
]


@pytest.mark.parametrize("stride,padding,dilation,groups", CONV_CASES)
def test_conv2d_forward_matches_naive_loop(stride, padding, dilation, groups):
    x = rng.normal(size=(2, 4, 7, 6))
    w = rng.normal(size=(8, 4 // groups, 3, 2))
    b = rng.normal(size=8)
    got = VF.conv2d(Tensor(x), Tensor(w), Tensor(b), stride, padding, dilation, groups).numpy()
    np.testing.assert_allclose(got, naive_conv(x, w, b, stride, padding, dilation, groups), atol=1e-12)


@pytest.mark.parametrize("stride,padding,dilation,groups", CONV_CASES)
def test_conv2d_gradcheck(stride, padding, dilation, groups):
    x, w, b = t64(2, 4, 6, 5), t64(4, 4 // groups, 3, 2), t64(4)
    assert gradcheck(lambda a, k, c: VF.conv2d(a, k, c, stride, padding, dilation, groups), [x, w, b])


@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 2), (0, 0)), ((1, 1), (1, 1))])
def test_conv2d_1x1_forward_and_gradcheck(stride, padding):
    """1x1 convs skip im2col when the input already is the patch matrix (stride 1, no padding)."""
    x, w, b = t64(2, 4, 5, 6), t64(3, 4, 1, 1), t64(3)
    got = VF.conv2d(x, w, b, stride, padding).numpy()
    np.testing.assert_allclose(got, naive_conv(x.numpy(), w.numpy(), b.numpy(), stride, padding, (1, 1), 1),
                               atol=1e-12)
    assert gradcheck(lambda a, k, c: VF.conv2d(a, k, c, stride, padding), [x, w, b])


def test_conv2d_without_bias_and_same_padding_gradcheck():
    x, w = t64(2, 3, 5, 5), t64(2, 3, 3, 3)
    assert gradcheck(lambda a, k: VF.conv2d(a, k, None, padding="same"), [x, w])
    assert VF.conv2d(x, w, padding="same").shape == (2, 2, 5, 5)


def test_conv2d_layer_float32_shapes_and_alias():
    conv = Conv2D(3, 16, 3, stride=2, padding=1)
    assert conv is not None and Conv2D is Conv2d
    y = conv(Tensor(rng.normal(size=(4, 3, 32, 32)).astype(np.float32)))
    assert y.shape == (4, 16, 16, 16) and y.dtype == np.float32
    y.sum().backward()
    assert conv.weight.grad.dtype == np.float32 and conv.weight.grad.shape == (16, 3, 3, 3)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert "kernel_size=(3, 3)" in repr(conv)


def test_conv2d_matches_pytorch_init_bounds():
    conv = Conv2d(8, 4, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.bias.numpy()).max() <= bound


def test_conv2d_wrong_input_names_expected_and_actual():
    with pytest.raises(ValueError, match=r"Conv2d expected input \(N, 3, H, W\), got \(8, 1, 28, 28\)"):
        Conv2d(3, 8, 3)(Tensor(np.zeros((8, 1, 28, 28), dtype=np.float32)))
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d(3, 8, 0)
    with pytest.raises(ValueError, match="groups"):
        Conv2d(3, 8, 3, groups=2)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        Conv2d(1, 1, 5)(Tensor(np.zeros((1, 1, 3, 3), dtype=np.float32)))


POOLS = {
    "max 2x2 fast path": lambda a: VF.max_pool2d(a, 2),
    "max 3x3 s2 p1": lambda a: VF.max_pool2d(a, 3, 2, 1),
    "max 2x2 dilation 2": lambda a: VF.max_pool2d(a, 2, 1, 0, dilation=2),
    "max ceil_mode": lambda a: VF.max_pool2d(a, 2, 2, ceil_mode=True),
    "avg 2x2 fast path": lambda a: VF.avg_pool2d(a, 2),
    "avg 3x3 s2 p1": lambda a: VF.avg_pool2d(a, 3, 2, 1),
    "avg 3x3 p1 exclude pad": lambda a: VF.avg_pool2d(a, 3, 1, 1, count_include_pad=False),
    "adaptive (3, 2)": lambda a: VF.adaptive_avg_pool2d(a, (3, 2)),
    "adaptive global": lambda a: VF.adaptive_avg_pool2d(a, 1),
}


@pytest.mark.parametrize("name", list(POOLS))
def test_pooling_gradcheck(name):
    shape = (2, 3, 5, 7) if "ceil" in name or "adaptive" in name else (2, 3, 6, 6)
    assert gradcheck(POOLS[name], [t64(*shape)])


def naive_pool(x, k, s, p, reduce, pad_value):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=pad_value)
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = reduce(xp[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return out


def test_pooling_forward_matches_naive_loops():
    x = rng.normal(size=(2, 3, 8, 8))
    np.testing.assert_allclose(VF.max_pool2d(Tensor(x), 2).numpy(), naive_pool(x, 2, 2, 0, np.max, -np.inf))
    np.testing.assert_allclose(VF.max_pool2d(Tensor(x), 3, 2, 1).numpy(), naive_pool(x, 3, 2, 1, np.max, -np.inf))
    np.testing.assert_allclose(VF.avg_pool2d(Tensor(x), 3, 2, 1).numpy(), naive_pool(x, 3, 2, 1, np.mean, 0.0))
    np.testing.assert_allclose(VF.adaptive_avg_pool2d(Tensor(x), 1).numpy()[..., 0, 0], x.mean(axis=(2, 3)))
    # Adaptive bins of PyTorch for 8 -> 3: [0, 3), [2, 6), [5, 8)
    got = VF.adaptive_avg_pool2d(Tensor(x), (3, 8)).numpy()
    np.testing.assert_allclose(got[:, :, 1], x[:, :, 2:6].mean(axis=2))


@pytest.mark.parametrize("window,first", [
    ([[1.0, 1.0], [1.0, 0.0]], (0, 0)), ([[0.0, 2.0], [2.0, 2.0]], (0, 1)),
    ([[0.0, 1.0], [3.0, 3.0]], (1, 0)), ([[0.0, 3.0], [1.0, 3.0]], (0, 1)), ([[0.0, 1.0], [2.0, 3.0]], (1, 1)),
])
@pytest.mark.parametrize("channels", [1, 3])
def test_maxpool_gradient_goes_to_first_maximum_only(window, first, channels):
    """Ties go to the first maximum in row-major order, as in PyTorch (2x2 fast path and the
    general path with a 3x3 kernel over the same window padded with -inf)."""
    x = np.repeat(np.array(window, dtype=np.float32)[None, None], channels, axis=1)
    want = np.zeros_like(x)
    want[:, :, first[0], first[1]] = 1.0
    for pool in (lambda a: VF.max_pool2d(a, 2), lambda a: VF.max_pool2d(a, 3, 2, 1)):
        t = Tensor(x, requires_grad=True)
        pool(t).sum().backward()
        np.testing.assert_array_equal(t.grad, want)


def test_pool_layers_shapes_aliases_and_errors():
    x = Tensor(rng.normal(size=(2, 4, 28, 28)).astype(np.float32))
    assert MaxPool2D is MaxPool2d
    assert MaxPool2d(2)(x).shape == (2, 4, 14, 14) and MaxPool2d(2)(x).dtype == np.float32
    assert AvgPool2d(2)(x).shape == (2, 4, 14, 14)
    assert AdaptiveAvgPool2d(1)(x).shape == (2, 4, 1, 1)
    assert AdaptiveAvgPool2d((7, None))(x).shape == (2, 4, 7, 28)
    assert GlobalAvgPool2d()(x).shape == (2, 4)
    with pytest.raises(ValueError, match=r"max_pool2d expected input \(N, C, H, W\), got \(4, 28, 28\)"):
        MaxPool2d(2)(Tensor(np.zeros((4, 28, 28), dtype=np.float32)))
    with pytest.raises(ValueError, match="padding"):
        MaxPool2d(2, padding=2)(x)


@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (2, 4, 4, 4)])  # (M, C) as 1 or 32 rows per view row
def test_batchnorm2d_gradcheck_training_and_eval(shape):
    c = shape[1]
    bn = BatchNorm2d(c).double()
    bn.weight.data[:] = rng.normal(size=c)
    bn.bias.data[:] = rng.normal(size=c)
    x = t64(*shape)
    assert gradcheck(lambda a, w, b: VF.batch_norm2d(a, None, None, w, b, training=True), [x, bn.weight, bn.bias])
    assert gradcheck(lambda a: VF.batch_norm2d(a, None, None, training=True), [x])  # affine=False
    rm, rv = rng.normal(size=c), rng.uniform(0.5, 2, size=c)
    assert gradcheck(lambda a, w, b: VF.batch_norm2d(a, rm, rv, w, b, training=False), [x, bn.weight, bn.bias])


def test_batchnorm2d_matches_definition_and_running_stats():
    x = rng.normal(3.0, 2.0, size=(8, 4, 5, 5)).astype(np.float32)
    bn = BatchNorm2d(4)
    y = bn(Tensor(x)).numpy()
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-4)
    assert y.dtype == np.float32
    m = 8 * 25
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean.ravel(), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var.ravel() * m / (m - 1), rtol=1e-5)
    assert int(bn.num_batches_tracked.numpy()) == 1
    bn.eval()
    ye = bn(Tensor(x)).numpy()
    np.testing.assert_allclose(ye, (x - bn.running_mean.numpy().reshape(1, 4, 1, 1))
                               / np.sqrt(bn.running_var.numpy().reshape(1, 4, 1, 1) + 1e-5), atol=1e-5)
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


def test_batchnorm2d_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d expected input \(N, 4, H, W\), got \(2, 3, 5, 5\)"):
        BatchNorm2d(4)(Tensor(np.zeros((2, 3, 5, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm2d(4)(Tensor(np.zeros((1, 4, 1, 1), dtype=np.float32)))


def test_channels_last_layout_flows_between_layers():
    """The conv output is an NCHW view of NHWC memory; BN, ReLU and pooling keep that layout,
    so the next conv gets its NHWC input without a copy."""
    net = nn.Sequential(Conv2d(3, 8, 3, padding=1), BatchNorm2d(8), MaxPool2d(2), nn.ReLU())
    y = net(Tensor(rng.normal(size=(2, 3, 8, 8)).astype(np.float32)))
    assert y.numpy().transpose(0, 2, 3, 1).flags["C_CONTIGUOUS"]


def test_small_network_float64_gradcheck_end_to_end():
    net = nn.Sequential(Conv2d(2, 3, 3, padding=1), BatchNorm2d(3), MaxPool2d(2), nn.ReLU(),
                        Conv2d(3, 4, 3, stride=2, padding=1), AdaptiveAvgPool2d(1), nn.Flatten()).double()
    x = t64(3, 2, 8, 8)
    params = list(net.parameters())
    assert gradcheck(lambda a, *ps: net(a), [x, *params], max_elements=300)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def _glibc_version() -> tuple[int, ...]:
    name, version = platform.libc_ver()
    return tuple(int(v) for v in version.split(".")) if name == "glibc" and version else ()


@pytest.mark.skipif(_glibc_version() < (2, 33), reason="needs glibc >= 2.33 (mallinfo2)")
def test_conv_keeps_freed_memory_mapped_between_steps():
    """After a convolution, malloc serves a 64 MB array from its heap (not a private mmap that
    free returns to the kernel) and keeps the heap when it is freed, so the next step does not
    page-fault it back in."""
    mallinfo2 = ctypes.CDLL(ctypes.util.find_library("c")).mallinfo2
    mallinfo2.restype = _MallInfo2
    VF.conv2d(Tensor(np.ones((1, 1, 3, 3), dtype=np.float32)), Tensor(np.ones((1, 1, 1, 1), dtype=np.float32)))
    before = mallinfo2()
    big = np.ones(16 << 20, dtype=np.float32)  # 64 MB
    during = mallinfo2()
    del big
    after = mallinfo2()
    assert during.hblkhd - before.hblkhd < 1 << 20  # not mmapped on its own
    assert after.arena >= during.arena >= 64 << 20  # and not trimmed away when freed

"""vision's QuantizedConv2d: registered with core's quantization registry, equal bit for bit to a
direct int64 convolution of the quantized integers (no im2col in the reference), and usable by
prepare/convert on the vision models."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor
from tinytorch.core import quantization as Q
from tinytorch.vision import Conv2d, QuantizedConv2d, SmallCNN


def _direct_conv_int64(qx: np.ndarray, qw: np.ndarray, stride, dilation) -> np.ndarray:
    """Σ over taps and channels of padded NHWC integers times (Cout, Cin, kh, kw) integers."""
    n, hp, wp, _ = qx.shape
    cout, _, kh, kw = qw.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, ho, wo, cout), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            window = qx[:, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw, :]
            out += window.astype(np.int64) @ qw[:, :, i, j].T.astype(np.int64)
    return out


def _captured_accumulator(qconv: QuantizedConv2d, x: Tensor) -> np.ndarray:
    seen = []
    gemm = qconv.integer_gemm
    qconv.integer_gemm = lambda cols, qrange: seen.append(gemm(cols, qrange).copy()) or seen[-1].copy()
    try:
        qconv(x)
    finally:
        del qconv.integer_gemm
    return seen[0]


@pytest.mark.parametrize("cin, stride, padding, dilation", [
    (128, 1, 1, 1),      # K = 9·128 = 1,152 > 1,024: two chunks
    (5, 2, (2, 1), 1),
    (3, 1, 2, 2),
])
def test_quantized_conv_equals_direct_integer_convolution(cin, stride, padding, dilation):
    rng = np.random.default_rng(cin)
    conv = Conv2d(cin, 6, 3, stride=stride, padding=padding, dilation=dilation)
    calibration = rng.normal(size=(2, cin, 9, 9)).astype(np.float32) + 0.7   # zero point far from 0
    obs = Q.MinMaxObserver(dtype="uint8")
    obs(calibration)
    qconv = QuantizedConv2d.from_float(conv, input_observer=obs)
    x = (rng.normal(size=(2, cin, 9, 9)) * 1.3 + 0.7).astype(np.float32)
    s, z = float(qconv.input_scale.data), int(qconv.input_zero_point.data)
    assert z != 0
    qx = np.clip(np.round(x.transpose(0, 2, 3, 1) * np.float32(1 / s)) + z, 0, 255).astype(np.int64)
    ph, pw = conv._mode_padding
    qx = np.pad(qx, ((0, 0), ph, pw, (0, 0)), constant_values=z)           # padding holds 0.0: z
    cout, _, kh, kw = conv.weight.shape
    qw = qconv.weight_int8.data.reshape(cout, kh, kw, cin).transpose(0, 3, 1, 2)
    ref = _direct_conv_int64(qx - z, qw, conv.stride, conv.dilation)     # Σ (qx - z)·qw
    acc = _captured_accumulator(qconv, Tensor(x))
    assert np.array_equal(acc.reshape(ref.shape), ref)
    expected = ref * (s * qconv.weight_scale.data.astype(np.float64)) + conv.bias.data
    out = qconv(Tensor(x)).numpy().transpose(0, 2, 3, 1)
    assert np.allclose(out, expected, rtol=1e-6, atol=1e-6)
    # on values inside the calibrated range (x above also has clamped ones), close to the float layer
    inside, float_out = qconv(Tensor(calibration)).numpy(), conv(Tensor(calibration)).numpy()
    assert np.abs(inside - float_out).max() < 0.03 * np.abs(float_out).max()


def test_quantized_conv_adversarial_extremes():
    cin = 256                                          # K = 2,304: five chunks of 514
    conv = Conv2d(cin, 2, 3, padding=1, bias=False)
    obs = Q.MinMaxObserver(dtype="uint8")
    obs(np.array([0.0, 1.0], dtype=np.float32))         # zero point 0: q - z up to 255
    qconv = QuantizedConv2d.from_float(conv, input_observer=obs)
    weight = qconv.weight_int8.data.copy()
    weight[0] = 127
    weight[0, 5] = -128                                # an odd count of odd products: an odd sum
    weight[1] = -128
    qconv.load_state_dict({**qconv.state_dict(), "weight_int8": weight})
    x = np.full((1, cin, 4, 4), 1000.0, dtype=np.float32)    # every input integer clamps to 255
    acc = _captured_accumulator(qconv, Tensor(x))
    qx = np.pad(np.full((1, 4, 4, cin), 255), ((0, 0), (1, 1), (1, 1), (0, 0)))
    qw = qconv.weight_int8.data.reshape(2, 3, 3, cin).transpose(0, 3, 1, 2)
    ref = _direct_conv_int64(qx, qw, (1, 1), (1, 1))
    assert (ref.astype(np.float32).astype(np.int64) != ref).any()   # beyond what float32 holds
    assert np.array_equal(acc.reshape(ref.shape), ref)


def test_registry_maps_vision_conv_and_convert_quantizes_a_cnn():
    assert Q.get_quantized_module_class(Conv2d) is QuantizedConv2d
    model = SmallCNN((1, 12, 12), num_classes=3).eval()
    rng = np.random.default_rng(1)
    batches = [Tensor(rng.normal(size=(8, 1, 12, 12)).astype(np.float32)) for _ in range(3)]
    prepared = Q.prepare(model)
    for b in batches:
        prepared(b)
    qmodel = Q.convert(prepared)
    kinds = [type(m).__name__ for m in qmodel.modules()]
    assert kinds.count("QuantizedConv2d") == 2 and kinds.count("QuantizedLinear") == 2
    ref = model(batches[0]).numpy()
    assert np.abs(qmodel(batches[0]).numpy() - ref).max() < 0.1 * np.abs(ref).max()


def test_grouped_or_padded_modes_are_refused_by_name():
    with pytest.raises(ValueError, match="groups"):
        QuantizedConv2d.from_float(Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match="padding_mode"):
        QuantizedConv2d.from_float(Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))


def test_qat_on_a_cnn_converts_to_what_it_simulated():
    from tinytorch.core import nn
    from tinytorch.core.optim import SGD

    rng = np.random.default_rng(3)
    model = SmallCNN((1, 8, 8), num_classes=3, widths=(4, 8), hidden=16, dropout=0.0)
    qat = Q.prepare_qat(model)
    opt = SGD(qat.parameters(), lr=0.01)
    x, y = Tensor(rng.normal(size=(8, 1, 8, 8)).astype(np.float32)), rng.integers(0, 3, 8)
    for _ in range(3):
        loss = nn.CrossEntropyLoss()(qat(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    conv = qat.features[0].layer
    assert conv.weight.grad is not None and type(conv.weight).__name__ == "Parameter"
    qat.eval()
    qat(x)                                   # the final weights' ranges
    qat.apply(Q.disable_observer)
    fake = qat(x).numpy()
    qmodel = Q.convert(qat)
    assert type(qmodel.features[0]).__name__ == "QuantizedConv2d"
    assert np.allclose(qmodel(x).numpy(), fake, atol=1e-4)

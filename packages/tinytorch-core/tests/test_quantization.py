"""tinytorch.core.quantization: closed forms of quantize/dequantize, observers on hand-computed
ranges, the straight-through gradient, and integer layers equal to an int64 reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, gradcheck, nn
from tinytorch.core import quantization as Q
from tinytorch.core.optim import SGD

# ------------------------------------------------------------------------------ quantize / dequantize


def test_per_tensor_affine_closed_form_with_zero_point_and_clamping_at_both_ends():
    x = np.array([-10.0, -5.0, -0.26, 0.0, 0.74, 1.25, 60.0, 200.0])
    q = Q.quantize_per_tensor(x, scale=0.5, zero_point=10, dtype="uint8")
    # round(x / 0.5) + 10: -10 -> -10 (clamped to 0), -5 -> 0, -0.52 -> -1 + 10, 0 -> 10,
    # 1.48 -> 1 + 10, 2.5 -> 2 (half to even) + 10, 120 + 10, 400 + 10 (clamped to 255)
    assert q.int_repr().tolist() == [0, 0, 9, 10, 11, 12, 130, 255]
    assert q.data.dtype == np.uint8
    assert Q.dequantize(q).numpy().tolist() == [-5.0, -5.0, -0.5, 0.0, 0.5, 1.0, 60.0, 122.5]


def test_int8_clamps_at_both_ends():
    q = Q.quantize_per_tensor(np.array([-1000.0, -12.8, 12.7, 1000.0]), 0.1, 0, "int8")
    assert q.int_repr().tolist() == [-128, -128, 127, 127]
    assert q.data.dtype == np.int8


def test_per_channel_along_axis_1():
    x = np.array([[1.0, 2.2, -3.0], [2.0, -4.0, 9.0]])
    q = Q.quantize_per_channel(x, scales=[1.0, 2.0, 3.0], zero_points=[0, 1, -1], axis=1, dtype="int8")
    assert q.int_repr().tolist() == [[1, 2, -2], [2, -1, 2]]
    assert Q.dequantize(q).numpy().tolist() == [[1.0, 2.0, -3.0], [2.0, -4.0, 9.0]]


def test_choose_qparams_closed_forms():
    s, z = Q.choose_qparams(-1.0, 3.0, "uint8")               # affine
    assert np.isclose(s, 4 / 255) and z == 64                  # 0 - round(-1 / (4/255)) = 64
    s, z = Q.choose_qparams(0.5, 2.0, "uint8")                 # range widened to include 0
    assert np.isclose(s, 2 / 255) and z == 0
    s, z = Q.choose_qparams(-2.0, 1.0, "int8", symmetric=True)
    assert np.isclose(s, 2 / 127.5) and z == 0
    s, z = Q.choose_qparams(-2.0, 1.0, "uint8", symmetric=True)
    assert np.isclose(s, 2 / 127.5) and z == 128
    s, z = Q.choose_qparams(np.array([-1.0, 0.0]), np.array([1.0, 0.0]), "int8")
    assert s[1] == np.float32(np.finfo(np.float32).eps) and s.shape == (2,)


def test_int4_packs_element_2i_in_the_low_nibble():
    assert Q.pack_int4(np.array([1, 2, 3, 4, 5])).tolist() == [0x21, 0x43, 0x05]
    q = Q.quantize_per_tensor(np.array([-1.0, 2.0, -8.0, 7.0, 3.0]), 1.0, 0, "int4")
    assert q.data.tolist() == [0x2F, 0x78, 0x03]              # -1 = 0xF low, 2 high; -8 = 0x8 low, 7 high
    assert q.int_repr().tolist() == [-1, 2, -8, 7, 3]
    assert q.nbytes == 3
    u = Q.quantize_per_tensor(np.array([[0.0, 15.0], [20.0, -1.0]]), 1.0, 0, "uint4")
    assert u.data.tolist() == [0xF0, 0x0F] and u.int_repr().tolist() == [[0, 15], [15, 0]]


@pytest.mark.parametrize("call, argument", [
    (lambda: Q.quantize_per_tensor(np.ones(2), 0.1, 0, "int16"), "dtype"),
    (lambda: Q.quantize_per_tensor(np.ones(2), 0.0, 0), "scale"),
    (lambda: Q.quantize_per_tensor(np.ones(2), -1.0, 0), "scale"),
    (lambda: Q.quantize_per_tensor(np.ones(2), float("nan"), 0), "scale"),
    (lambda: Q.quantize_per_tensor(np.array([1.0, np.inf]), 0.1, 0), "x"),
    (lambda: Q.quantize_per_tensor(np.ones(2), 0.1, 300, "uint8"), "zero_point"),
    (lambda: Q.quantize_per_channel(np.ones((2, 3)), [1.0, 1.0], [0, 0], axis=2), "axis"),
    (lambda: Q.quantize_per_channel(np.ones((2, 3)), [1.0, 1.0], [0, 0], axis=1), "scales"),
    (lambda: Q.choose_qparams(np.nan, 1.0), "min_val"),
    (lambda: Q.fake_quantize_per_tensor_affine(Tensor([1.0]), 0.0, 0), "scale"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        call()


# ------------------------------------------------------------------------------ observers


def test_min_max_observer_on_hand_computed_ranges():
    obs = Q.MinMaxObserver(dtype="uint8")
    obs(Tensor([0.5, 2.0]))
    obs(np.array([[-1.0], [1.0]]))
    assert (float(obs.min_val.data), float(obs.max_val.data)) == (-1.0, 2.0)
    scale, zero = obs.calculate_qparams()
    assert np.isclose(scale, 3 / 255) and zero == 85           # round(1 / (3/255)) = 85
    with pytest.raises(RuntimeError, match="before any data"):
        Q.MinMaxObserver().calculate_qparams()


def test_moving_average_observer_follows_the_ema():
    obs = Q.MovingAverageMinMaxObserver(averaging_constant=0.1)
    obs(np.array([-1.0, 1.0]))                                 # first batch sets the range
    obs(np.array([-3.0, 11.0]))                                # -1 + 0.1·(-2), 1 + 0.1·10
    obs(np.array([0.0, 2.0]))                                  # -1.2 + 0.1·1.2, 2 + 0
    assert np.allclose([obs.min_val.data, obs.max_val.data], [-1.08, 2.0])


def test_per_channel_observer_on_axis_1():
    obs = Q.PerChannelMinMaxObserver(ch_axis=1, dtype="int8", qscheme="per_channel_symmetric")
    obs(np.array([[1.0, -4.0, 0.0], [-2.0, 3.0, 0.0]]))
    obs(np.array([[0.5, 0.0, 6.0]]))
    assert obs.min_val.data.tolist() == [-2.0, -4.0, 0.0] and obs.max_val.data.tolist() == [1.0, 3.0, 6.0]
    scale, zero = obs.calculate_qparams()
    assert np.allclose(scale, np.array([2.0, 4.0, 6.0]) / 127.5) and zero.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="3 channels"):
        obs(np.ones((1, 4)))


def test_histogram_observer_rebins_and_clips_heavy_tails():
    obs = Q.HistogramObserver(bins=4)
    obs(np.array([0.0, 0.1, 0.9, 1.0]))                        # bins of 0.25: [2, 0, 0, 2]
    assert obs.histogram.data.tolist() == [2, 0, 0, 2]
    obs(np.array([3.0]))                                       # bins of 0.75: old centres 0.125 -> 0, 0.875 -> 1
    assert obs.histogram.data.tolist() == [2, 2, 0, 1]
    assert (float(obs.min_val.data), float(obs.max_val.data)) == (0.0, 3.0)

    x = np.random.default_rng(1).uniform(-1.0, 2.0, 50_000)   # no tails: the range stays whole
    uniform = Q.HistogramObserver()
    uniform(x)
    lo, hi = uniform._clip_range()
    assert abs(lo + 1.0) < 0.01 and abs(hi - 2.0) < 0.01

    x = np.random.default_rng(2).laplace(size=50_000)
    hist, minmax = Q.HistogramObserver(), Q.MinMaxObserver()
    hist(x)
    minmax(x)

    def mse(obs):
        s, z = obs.calculate_qparams()
        return float(((Q.dequantize(Q.quantize_per_tensor(x, float(s), int(z), "uint8")).numpy() - x) ** 2).mean())

    assert hist._clip_range()[1] < 0.97 * x.max() and mse(hist) < 0.97 * mse(minmax)


# ------------------------------------------------------------------------------ fake quantization


def test_fake_quantize_equals_quantize_then_dequantize():
    x = np.random.default_rng(3).normal(size=(4, 5)) * 3
    fq = Q.fake_quantize_per_tensor_affine(Tensor(x), 0.05, 3, "int8").numpy()
    ref = Q.dequantize(Q.quantize_per_tensor(x, 0.05, 3, "int8")).numpy()
    assert np.allclose(fq, ref, atol=1e-6)
    scales = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    fq = Q.fake_quantize_per_channel_affine(Tensor(x), scales, np.zeros(5, np.int64), axis=1).numpy()
    ref = Q.dequantize(Q.quantize_per_channel(x, scales, np.zeros(5), axis=1)).numpy()
    assert np.allclose(fq, ref, atol=1e-6)


def test_fake_quantize_gradient_is_zero_outside_the_clamping_range():
    # int8, scale 0.1, zero point 10: q = round(10·x) + 10 is clamped outside x in [-13.8, 11.7]
    x = Tensor(np.array([-20.0, -13.9, -13.7, 0.31, 11.6, 11.8, 50.0]), requires_grad=True)
    y = Q.fake_quantize_per_tensor_affine(x, 0.1, 10, "int8")
    upstream = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    (y * Tensor(upstream)).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 3.0, 4.0, 5.0, 0.0, 0.0]


def test_fake_quantize_gradcheck_against_the_straight_through_surrogate():
    """Away from the rounding steps the staircase is flat, so finite differences of the
    forward itself say 0; the straight-through estimator instead claims the derivative of its
    surrogate, clamp(x, lo, hi) with the clamping edges half a step out. So check backward
    against finite differences of that surrogate: f(x) = FQ(x) - const(FQ(x) - clamp(x)), which
    equals clamp(x) in value and has FQ's backward."""
    scale, zero, (qmin, qmax) = 0.25, 3, Q.QDTYPES["int8"]
    lo, hi = (qmin - 0.5 - zero) * scale, (qmax + 0.5 - zero) * scale
    rng = np.random.default_rng(4)
    # values on both sides of the clamping range, none within 0.01 of its edges
    x = np.concatenate([rng.uniform(lo - 5, lo - 0.01, 6), rng.uniform(lo + 0.01, hi - 0.01, 12),
                        rng.uniform(hi + 0.01, hi + 5, 6)])

    def surrogate_fq(t):
        y = Q.fake_quantize_per_tensor_affine(t, scale, zero, "int8")
        return y - Tensor(y.data - np.clip(t.data, lo, hi))

    gradcheck(surrogate_fq, [Tensor(x, requires_grad=True)])

    w = rng.normal(size=(3, 4)) * np.array([[1.0], [20.0], [0.1]])
    scales = np.array([0.02, 0.05, 0.001])

    def surrogate_per_channel(t):
        y = Q.fake_quantize_per_channel_affine(t, scales, np.zeros(3, np.int64), axis=0, dtype="int8")
        bound_lo, bound_hi = (qmin - 0.5) * scales[:, None], (qmax + 0.5) * scales[:, None]
        return y - Tensor(y.data - np.clip(t.data, bound_lo, bound_hi))

    gradcheck(surrogate_per_channel, [Tensor(w, requires_grad=True)])


def test_fake_quantize_module_observes_then_rounds():
    fq = Q.FakeQuantize(Q.MinMaxObserver, dtype="uint8")
    x = np.array([0.0, 1.0, 0.5, 0.3])
    y = fq(Tensor(x))                                          # range [0, 1]: scale 1/255
    scale, zero = fq.calculate_qparams()
    assert np.isclose(scale, 1 / 255) and zero == 0
    assert np.allclose(y.numpy(), Q.dequantize(Q.quantize_per_tensor(x, float(scale), 0, "uint8")).numpy())
    fq.disable_observer()
    y = fq(Tensor(np.array([2.0])))                            # range frozen: clamped to 1.0
    assert np.allclose(y.numpy(), [1.0]) and float(fq.activation_post_process.max_val.data) == 1.0
    fq.disable_fake_quant()
    assert fq(Tensor(np.array([2.0]))).numpy().tolist() == [2.0]


# ------------------------------------------------------------------------------ the integer GEMM


def _exact(a, b):
    return a.astype(np.int64) @ b.astype(np.int64)


@pytest.mark.parametrize("k", [1, 1000, 1024, 1025, 3000])
def test_int_mm_equals_int64_matmul_bit_for_bit(k):
    rng = np.random.default_rng(k)
    a = rng.integers(-128, 128, size=(9, k)).astype(np.int8)
    b = rng.integers(-128, 128, size=(k, 7)).astype(np.int8)
    assert np.array_equal(Q.int_mm(a, b), _exact(a, b))
    assert np.array_equal(Q.int_mm(a.astype(np.float32), b), _exact(a, b))
    assert np.array_equal(Q.int_mm(a, np.asfortranarray(b)), _exact(a, b))   # a transposed weight
    wide = rng.integers(-255, 256, size=(9, k)).astype(np.float32)           # centred uint8
    assert np.array_equal(Q.int_mm_exact(wide, b, a_bound=255), _exact(wide, b))


def _beyond_float32(exact: np.ndarray) -> bool:
    """Some result is an integer float32 cannot hold: one float32 GEMM over all of K must be wrong."""
    return bool((exact.astype(np.float32).astype(np.int64) != exact).any())


def test_int_mm_exact_on_adversarial_plus_minus_128():
    # ±128 products drive the partial sums past 2^24, and odd sums (an odd count of 127·127)
    # beyond it are not float32 numbers: only the chunked sum in int32 gets them right
    k = 2101
    a = np.full((3, k), -128, dtype=np.int8)
    b = np.full((k, 4), -128, dtype=np.int8)
    a[1, 1024:] = 127
    b[1024:, 1] = 127
    b[::3, 2] = 127
    a[2, ::2] = 127
    exact = _exact(a, b)
    assert exact.max() > 2 ** 25 and _beyond_float32(exact)
    assert np.array_equal(Q.int_mm(a, b), exact)


def test_int_mm_exact_one_gemm_when_the_data_allows_it_else_chunks():
    # K = 3,000 is past the worst-case chunk (514 at |a| <= 255), but rows of small integers keep
    # every partial sum far below 2^24: one float32 GEMM (the float32 result says which path ran)
    rng = np.random.default_rng(11)
    k = 3000
    b = rng.integers(-128, 128, size=(k, 5)).astype(np.int8)
    small = rng.integers(0, 40, size=(4, k)).astype(np.float32)            # Σ a·128 <= 128·117,000 < 2^24
    signed = (small * rng.choice([-1, 1], size=small.shape)).astype(np.float32)
    for nonnegative, a in ((True, small), (False, signed)):
        for weight in (b, np.asfortranarray(b), b.astype(np.float32)):
            r = Q.int_mm_exact(a, weight, a_bound=255, nonnegative=nonnegative)
            assert r.dtype == np.float32 and r.flags.c_contiguous
            assert np.array_equal(r, _exact(a, b))
    # one row of 255s among small ones: every row must pass the check, or the big row's sums
    # (Σ a·128 = 98M) leave float32's exact range; the chunked sum gets them all exact
    mixed = small.copy()
    mixed[2] = 255
    b[:, 1] = -128
    b[0, 1] = 127                                      # 255·(127 - 128·2,999): odd, beyond 2^24
    exact = _exact(mixed, b)
    assert _beyond_float32(exact)
    for nonnegative, a_bound in ((True, 255), (False, 255)):
        r = Q.int_mm_exact(mixed, b, a_bound=a_bound, nonnegative=nonnegative)
        assert r.dtype == np.float64 and np.array_equal(r, exact)


# ------------------------------------------------------------------------------ quantized layers


def _static_linear(k=1500, n=9, seed=5):
    rng = np.random.default_rng(seed)
    layer = nn.Linear(k, n)
    obs = Q.MinMaxObserver(dtype="uint8")
    obs(rng.normal(size=(64, k)).astype(np.float32) + 0.5)
    return layer, Q.QuantizedLinear.from_float(layer, input_observer=obs), rng


def test_quantized_linear_equals_the_integer_reference_bit_for_bit():
    layer, qlayer, rng = _static_linear()
    x = (rng.normal(size=(6, 1500)) * 1.5 + 0.5).astype(np.float32)     # some beyond the range
    s, z = float(qlayer.input_scale.data), int(qlayer.input_zero_point.data)
    assert 0 < z < 255 and qlayer.input_dtype == "uint8"
    # the reference: uint8 integers by the closed form, an int64 matmul, dequantized in float64
    qx = np.clip(np.round(x * np.float32(1 / s)) + z, 0, 255).astype(np.int64)
    assert qx.min() == 0 and qx.max() == 255                            # clamped at both ends
    qw = qlayer.weight_int8.data.astype(np.int64)
    acc = (qx - z) @ qw.T
    centred, _, qrange = qlayer.quantize_input(x)
    assert np.array_equal(centred, qx - z) and qrange == (-z, 255 - z)
    assert np.array_equal(qlayer.integer_gemm(centred, qrange), acc)
    ref = acc * (s * qlayer.weight_scale.data.astype(np.float64)) + layer.bias.data
    out = qlayer(Tensor(x)).numpy()
    assert np.allclose(out, ref, rtol=1e-6, atol=1e-6)
    assert np.abs(out - layer(Tensor(x)).numpy()).max() < 0.1 * np.abs(ref).max()


def test_quantized_linear_adversarial_extremes_beyond_one_chunk():
    k = 2051
    layer = nn.Linear(k, 2, bias=False)
    obs = Q.MinMaxObserver(dtype="uint8")
    obs(np.array([0.0, 1.0], dtype=np.float32))     # scale 1/255, zero point 0: q - z up to 255
    q = Q.QuantizedLinear.from_float(layer, input_observer=obs)
    # the extreme integers, loaded as a state dict (symmetric observers stop at -127 on a float32
    # scale); the layer's widened float32 copy of the weight follows
    weight = q.weight_int8.data.copy()
    weight[0] = 127
    weight[0, 7] = -128
    weight[1] = -128
    q.load_state_dict({**q.state_dict(), "weight_int8": weight})
    x = np.full((1, k), 1000.0, dtype=np.float32)  # clamps to 255
    exact = _exact(np.full((1, k), 255), q.weight_int8.data.T)
    assert _beyond_float32(exact)
    centred, _, qrange = q.quantize_input(x)
    assert qrange == (0, 255)
    assert np.array_equal(q.integer_gemm(centred, qrange), exact)
    expected = exact * (float(q.input_scale.data) * q.weight_scale.data.astype(np.float64))
    assert np.allclose(q(Tensor(x)).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("over", [0, 1])
def test_quantized_linear_one_gemm_bound_from_the_weight_l1(over):
    # Inputs over [0, 1] in uint8: scale 1/255, zero point 0, so |q - z| <= 255. One float32 GEMM
    # is exact whatever the input while 255·L1 <= 2^24, L1 the weight row's Σ|w|: up to 65,793
    # (255·65,793 = 2^24 - 1). One more and the layer must look at the data: rows of 255s fail
    # that check (Σ q·128 > 2^24), so K is chunked. The sum below is odd and beyond 2^24 in the
    # "over" case: a float32 GEMM cannot return it, so taking one GEMM there fails the test.
    l1 = 2 ** 24 // 255 + over
    k = -(-l1 // 127)                                # 519 weights: 518 of 127 and one remainder
    layer = nn.Linear(k, 1, bias=False)
    obs = Q.MinMaxObserver(dtype="uint8")
    obs(np.array([0.0, 1.0], dtype=np.float32))
    q = Q.QuantizedLinear.from_float(layer, input_observer=obs)
    assert Q.one_gemm_is_exact(255, q._weight_l1)   # the random weight's own L1 allows one GEMM
    weight = np.full((1, k), 127, dtype=np.int8)
    weight[0, -1] = l1 - 127 * (k - 1)
    # loaded as a state dict: the layer's L1 bound must follow (a stale one would allow one GEMM)
    q.load_state_dict({**q.state_dict(), "weight_int8": weight})
    x = np.ones((2, k), dtype=np.float32)           # q = 255 everywhere...
    x[0, 3] = np.float32(254 / 255)                 # ...but one 254 times a 127: an odd sum
    centred, scale, qrange = q.quantize_input(x)
    assert qrange == (0, 255) and centred[0, 3] == 254 and not Q.rows_fit_one_gemm(centred, True)
    exact = _exact(centred, weight.T)
    assert exact[1, 0] == 255 * l1 and (exact[0, 0] % 2 == 1 and exact[0, 0] > 2 ** 24) == bool(over)
    acc = q.integer_gemm(centred, qrange)
    assert acc.dtype == (np.float64 if over else np.float32)   # chunks, or the one GEMM the bound allows
    assert np.array_equal(acc, exact)
    expected = exact * (scale * q.weight_scale.data.astype(np.float64))
    assert np.allclose(q(Tensor(x)).numpy(), expected, rtol=1e-6)


def test_quantized_linear_widens_weights_larger_than_the_buffer_block_by_block():
    # 600 x 1,100 int8 weights are 2.6 MB in float32, over BLOCK_BYTES: the GEMM runs on blocks of
    # rows widened one at a time into the shared buffer, each block's columns of the output exact,
    # on both paths (one GEMM, chunked K); the layer holds no float32 copy of its weight
    rng = np.random.default_rng(13)
    k, n = 1100, 600
    layer = nn.Linear(k, n)
    obs = Q.MinMaxObserver(dtype="uint8")
    obs(np.array([0.0, 3.0], dtype=np.float32))                      # zero point 0: |q - z| <= 255
    q = Q.QuantizedLinear.from_float(layer, input_observer=obs)
    assert n > q._block_rows and n % q._block_rows != 0               # blocks and a shorter last one
    assert not Q.one_gemm_is_exact(255, q._weight_l1)                 # the data decide
    assert sum(b.data.nbytes for b in q.buffers()) < 2 * q.weight_int8.data.nbytes
    for x, dtype in ((rng.uniform(0, 0.5, size=(5, k)), np.float32),  # small rows: one GEMM
                     (np.full((5, k), 3.0), np.float64)):              # rows of 255s: chunks
        centred, scale, qrange = q.quantize_input(x.astype(np.float32))
        exact = _exact(centred, q.weight_int8.data.T)
        acc = q.integer_gemm(centred, qrange)
        assert acc.dtype == dtype and np.array_equal(acc, exact)
        expected = exact * (scale * q.weight_scale.data.astype(np.float64)) + layer.bias.data
        assert np.allclose(q(Tensor(x.astype(np.float32))).numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k, n, m, low, high", [
    (128, 10, 64, -0.5, 2.0),      # the weight's bound settles one GEMM (fc2's case)
    (3000, 12, 8, 0.0, 0.05),      # small rows: the data check allows one GEMM
    (3000, 12, 8, 0.9, 1.0),       # rows near the top of the range: chunks
    (3000, 12, 8, -1.0, 0.05),     # centred integers of both signs: the check takes |q - z|
    (40, 80, 1000, -0.5, 2.0),     # an output of 80,000 values: the folded scale and bias
])
def test_quantized_linear_forward_equals_its_three_steps_bit_for_bit(k, n, m, low, high, monkeypatch):
    # gemm_forward runs a static layer's steps inline; it must give what quantize_input,
    # integer_gemm and dequantize_output give, which the tests above hold to the int64 reference.
    # Its data check must see |q - z| where q - z has both signs: a wrong sign-blind check would
    # change the output by less than a float32 rounding, so the check's argument is recorded.
    from tinytorch.core.quantization import modules

    checks = []
    check = modules.rows_fit_one_gemm
    monkeypatch.setattr(modules, "rows_fit_one_gemm", lambda a, nonnegative=False: checks.append(nonnegative)
                        or check(a, nonnegative))
    rng = np.random.default_rng(k + m)
    layer = nn.Linear(k, n)
    obs = Q.MinMaxObserver(dtype="uint8")
    obs(np.array([-1.0 if low < 0 else 0.0, 1.0], dtype=np.float32))
    q = Q.QuantizedLinear.from_float(layer, input_observer=obs)
    x = rng.uniform(low, high, size=(m, k)).astype(np.float32)
    centred, scale, qrange = q.quantize_input(x)
    acc = q.integer_gemm(centred, qrange)
    assert np.array_equal(acc, _exact(centred, q.weight_int8.data.T))
    steps = q.dequantize_output(acc, scale)
    assert np.array_equal(q(Tensor(x)).numpy(), steps)
    assert np.array_equal(q(Tensor(x.astype(np.float64))).numpy(), steps)     # the methods' path
    if not q._one_gemm:                        # the data decide: each check knew the range's sign
        assert checks and set(checks) == {qrange[0] >= 0}


def test_quantized_linear_on_a_long_narrow_output_equals_the_reference():
    # 1,024 x 64 outputs: the scale and bias are applied on the output viewed with long rows
    # and the vectors tiled (modules._fold); every column must still get its own channel's
    layer = nn.Linear(24, 64)
    layer.bias.data[:] = np.arange(64, dtype=np.float32)
    rng = np.random.default_rng(12)
    obs = Q.MinMaxObserver(dtype="uint8")
    obs(np.array([-1.0, 2.0], dtype=np.float32))
    q = Q.QuantizedLinear.from_float(layer, input_observer=obs)
    x = rng.uniform(-1, 2, size=(1024, 24)).astype(np.float32)
    centred, scale, qrange = q.quantize_input(x)
    acc = _exact(centred, q.weight_int8.data.T)
    expected = acc * (scale * q.weight_scale.data.astype(np.float64)) + layer.bias.data
    assert np.allclose(q(Tensor(x)).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_quantize_dynamic_swaps_linears_and_keeps_the_original():
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    x = Tensor(np.random.default_rng(6).normal(size=(16, 20)).astype(np.float32))
    qmodel = Q.quantize_dynamic(model, {nn.Linear})
    assert [type(m).__name__ for m in qmodel] == ["QuantizedLinear", "ReLU", "QuantizedLinear"]
    assert type(model[0]) is nn.Linear                       # a copy was quantized
    ref = model(x).numpy()
    assert np.abs(qmodel(x).numpy() - ref).max() < 0.03 * np.abs(ref).max()
    with pytest.raises(ValueError, match="ReLU"):
        Q.quantize_dynamic(model, {nn.ReLU})
    with pytest.raises(ValueError, match="dtype"):
        Q.quantize_dynamic(model, {nn.Linear}, dtype="uint8")


def test_static_prepare_calibrate_convert():
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with pytest.raises(ValueError, match="prepare"):
        Q.convert(model)
    prepared = Q.prepare(model)
    with pytest.raises(RuntimeError, match="before any data"):
        Q.convert(prepared)
    rng = np.random.default_rng(7)
    batches = [rng.uniform(-2.0, 3.0, size=(32, 6)).astype(np.float32) for _ in range(3)]
    for b in batches:
        prepared(Tensor(b))
    qmodel = Q.convert(prepared)
    first = qmodel[0]
    lo, hi = min(b.min() for b in batches), max(b.max() for b in batches)
    assert np.isclose(float(first.input_scale.data), (hi - lo) / 255, rtol=1e-6)
    assert int(first.input_zero_point.data) == int(np.round(-lo / ((hi - lo) / 255)))
    x = Tensor(batches[0])
    ref = model(x).numpy()
    assert np.abs(qmodel(x).numpy() - ref).max() < 0.03 * np.abs(ref).max()


def test_qat_trains_the_float_weights_and_converts_to_the_same_function():
    rng = np.random.default_rng(8)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    qat = Q.prepare_qat(model)
    weight = qat[0].layer.weight
    opt = SGD(qat.parameters(), lr=0.05)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.normal(size=(64, 2)).astype(np.float32)
    losses = []
    for _ in range(20):
        loss = ((qat(Tensor(x)) - Tensor(y)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    assert qat[0].layer._parameters["weight"] is weight      # the Parameter is back after forward
    assert weight.grad is not None and losses[-1] < losses[0]
    qat.eval()
    qat(Tensor(x))                                            # observe the final weights' range
    qat.apply(Q.disable_observer)
    fake = qat(Tensor(x)).numpy()
    qmodel = Q.convert(qat)
    assert [type(m).__name__ for m in qmodel] == ["QuantizedLinear", "ReLU", "QuantizedLinear"]
    # the integer model computes what fake quantization simulated
    assert np.allclose(qmodel(Tensor(x)).numpy(), fake, atol=1e-5)


def test_registry_refuses_what_cannot_quantize():
    with pytest.raises(TypeError, match="float_cls"):
        Q.register_quantized_module(int, Q.QuantizedLinear)
    with pytest.raises(TypeError, match="from_float"):
        Q.register_quantized_module(nn.ReLU, nn.ReLU)
    assert Q.get_quantized_module_class(nn.Linear) is Q.QuantizedLinear

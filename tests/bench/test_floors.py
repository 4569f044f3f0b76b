"""The floors' arithmetic and micro-benchmarks: the hand-encoded int8 GEMM model computes the right product, the
rates are plausible numbers, and the FLOP counts match a count done by hand."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from bench import floors

pytestmark = pytest.mark.unit


def test_matmul_integer_model_computes_the_int8_product() -> None:
    sess = ort.InferenceSession(floors.matmul_integer_model(8, 16, 4), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    # Activations within 7 bits, as quantised models keep them: AVX2's u8 x s8 pair-sum (vpmaddubsw) saturates
    # at int16, so full-range u8 values could overflow there (the speed being measured is the same).
    a = rng.integers(0, 128, (8, 16), dtype=np.uint8)
    b = rng.integers(-127, 127, (16, 4), dtype=np.int8)
    (y,) = sess.run(None, {"A": a, "B": b})
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, a.astype(np.int32) @ b.astype(np.int32))


def test_rates_are_positive_and_finite() -> None:
    int8 = floors.int8_gemm_gops(64, 64, 64, repeats=2)
    assert int8 is not None and 0 < int8 < 1e5
    assert 0 < floors.fp32_gemm_gflops(64, repeats=2) < 1e5
    assert 0 < floors.memory_read_gbps(16, repeats=2) < 1e4
    assert 0 < floors.loopback_gbps(4) < 1e4


def test_transformer_layer_flops_by_hand() -> None:
    d, ffn, t = 384, 1536, 1500
    by_hand = 2 * (4 * d * d * t + 2 * d * ffn * t + 2 * t * t * d)
    assert floors.transformer_layer_flops(d, ffn, t) == by_hand
    # Cross-attention style: queries over another sequence's keys.
    assert floors.transformer_layer_flops(d, ffn, 1, context=1500) == 2 * (4 * d * d + 2 * d * ffn + 2 * 1500 * d)


def test_whisper_tiny_flops_per_audio_second() -> None:
    from bench.transcription import whisper_flops

    f = whisper_flops(30.0, tokens=0, beams=5)
    # One 30-s window through tiny.en's encoder: ~37 GFLOP (two convolutions + 4 layers over 1,500 frames).
    assert f["encoder"] == pytest.approx(37.0e9, rel=0.05)
    assert f["decoder"] == 0
    per_token = whisper_flops(30.0, tokens=1, beams=1)["decoder"]
    # Per token: 4 layers of projections, MLP and cross-attention, then the 51,864-word vocabulary projection.
    assert per_token == pytest.approx(4 * (12 * 384 * 384 + 4 * 384 * 1536 + 4 * 1500 * 384) + 2 * 384 * 51864)

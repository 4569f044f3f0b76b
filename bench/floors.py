"""Micro-benchmarks of this machine's raw capacity, for the floors in bench/RESULTS.md: fp32 GEMM (numpy's
BLAS), int8 GEMM (onnxruntime's MatMulInteger, the kernel ONNX int8 models run on), memory read bandwidth and
loopback TCP bandwidth. Each runs for about a second and returns the best of a few repeats (the machine is
shared; the best repeat is the closest to what the hardware can do)."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _best(fn: Callable[[], Any], repeats: int, min_s: float = 0.05) -> float:
    """Fastest wall time of `fn` over `repeats` runs (each run repeated until it lasts `min_s`)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s:
                break
        best = min(best, elapsed / n)
    return best


def _one_thread_env() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def fp32_gemm_gflops(n: int = 512, repeats: int = 10) -> float:
    """numpy (OpenBLAS) float32 GEMM, n x n x n, in GFLOP/s with however many threads BLAS uses here."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n**3 / _best(lambda: a @ b, repeats) / 1e9


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _value_info(name: str, elem_type: int, dims: tuple[int, ...]) -> bytes:
    shape = b"".join(_field(1, _field(1, d)) for d in dims)
    tensor = _field(1, elem_type) + _field(2, shape)
    return _field(1, name.encode()) + _field(2, _field(1, tensor))


def matmul_integer_model(m: int, k: int, n: int) -> bytes:
    """A one-node ONNX model, Y[int32] = MatMulInteger(A[uint8], B[int8]), encoded by hand: the `onnx`
    package is not a dependency, and the protobuf wire format of five messages is short."""
    uint8, int8, int32 = 2, 3, 6
    node = _field(1, b"A") + _field(1, b"B") + _field(2, b"Y") + _field(4, b"MatMulInteger")
    graph = (
        _field(1, node)
        + _field(2, b"gemm")
        + _field(11, _value_info("A", uint8, (m, k)))
        + _field(11, _value_info("B", int8, (k, n)))
        + _field(12, _value_info("Y", int32, (m, n)))
    )
    opset = _field(2, 13)
    return _field(1, 7) + _field(8, opset) + _field(7, graph)


def int8_gemm_gops(m: int = 512, k: int = 512, n: int = 512, threads: int = 1, repeats: int = 10) -> float | None:
    """onnxruntime MatMulInteger (u8 x s8 -> s32) in GOP/s (a multiply-add is 2 ops) on `threads` threads;
    None when onnxruntime is missing or refuses the model."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(matmul_integer_model(m, k, n), opts, providers=["CPUExecutionProvider"])
    except Exception:  # an unusual build: the caller falls back to fp32
        return None
    rng = np.random.default_rng(0)
    feeds = {
        "A": rng.integers(0, 255, (m, k), dtype=np.uint8),
        "B": rng.integers(-127, 127, (k, n), dtype=np.int8),
    }
    return 2 * m * k * n / _best(lambda: sess.run(None, feeds), repeats) / 1e9


def memory_read_gbps(mb: int = 256, repeats: int = 5) -> float:
    """Streaming read bandwidth (a float32 sum over an array far larger than the caches), GB/s."""
    a = np.ones(mb * 1024 * 1024 // 4, dtype=np.float32)
    return a.nbytes / _best(lambda: float(a.sum()), repeats, min_s=0.1) / 1e9


def loopback_gbps(mb: int = 64) -> float:
    """TCP throughput over 127.0.0.1 (one connection, 64 KiB writes), GB/s."""
    payload = b"\0" * 65536
    total = mb * 1024 * 1024
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def drain() -> None:
            conn, _ = server.accept()
            with conn:
                got = 0
                while got < total:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)

        reader = threading.Thread(target=drain)
        reader.start()
        with socket.create_connection(("127.0.0.1", port)) as client:
            t0 = time.perf_counter()
            sent = 0
            while sent < total:
                client.sendall(payload)
                sent += len(payload)
            reader.join()
            elapsed = time.perf_counter() - t0
    return total / elapsed / 1e9


def transformer_layer_flops(d: int, ffn: int, tokens: int, context: int | None = None) -> float:
    """FLOPs of one pre-norm transformer encoder layer over `tokens` positions (2 per multiply-add): the
    four attention projections, the two feed-forward matrices, and the attention products over `context`."""
    ctx = tokens if context is None else context
    projections = 4 * d * d * tokens * 2
    mlp = 2 * d * ffn * tokens * 2
    attention = 2 * tokens * ctx * d * 2
    return float(projections + mlp + attention)


def machine_capacity(int8_threads: int = 1) -> dict[str, float | None]:
    """All of the above, as a dict for a section's `extra` (so a reader can redo the arithmetic)."""
    return {
        "fp32_gemm_gflops": round(fp32_gemm_gflops(), 2),
        "int8_gemm_gops_1thread": _round(int8_gemm_gops(threads=int8_threads)),
        "memory_read_gbps": round(memory_read_gbps(), 2),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


if __name__ == "__main__":
    _one_thread_env()
    sys.stdout.write(f"{machine_capacity()} loopback {loopback_gbps():.2f} GB/s\n")

"""FLOPs of the model, counted from its shapes, for model FLOP utilisation (MFU).

Matrix multiplications only (2 FLOPs per multiply-add), as MFU is usually
defined: attention is counted over the full (masked) sequence, since masks do
not skip work; a training step is 3x the forward pass (the backward pass
costs two matmuls per forward one) less the tubelet embedding's gradient
with respect to the pixels, which nobody needs and XLA does not compute;
recomputation under `remat` is not model work and is not counted. `tests/test_model.py` checks the count against XLA's
own cost analysis of the compiled forward and training programs.
"""

from __future__ import annotations

from physsim.model.config import ModelConfig

# Dense bf16 peak of one device (FLOP/s), from the vendors' data sheets. MFU of a
# float32 run is reported against this bf16 peak too (the row records the dtype).
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": 989e12,  # SXM
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
}


def _block(tokens: int, width: int, hidden: int, keys: int | None = None) -> int:
    """One transformer block: projections, attention scores and mixing, MLP."""
    keys = tokens if keys is None else keys
    projections = 2 * (2 * tokens + 2 * keys) * width * width  # q, out on tokens; k, v on keys
    attention = 2 * 2 * tokens * keys * width
    mlp = 2 * 2 * tokens * width * hidden
    return projections + attention + mlp


def forward_flops(cfg: ModelConfig) -> dict[str, int]:
    """Forward-pass FLOPs of one example, by part."""
    nv = cfg.video_tokens
    encoder = tubelet_embedding_flops(cfg)
    encoder += cfg.enc_depth * _block(nv, cfg.enc_width, cfg.enc_mlp)
    decoder = 2 * nv * cfg.enc_width * cfg.dec_width  # projection
    decoder += cfg.dec_depth * _block(cfg.sequence_length, cfg.dec_width, cfg.dec_mlp)
    decoder += 2 * cfg.answer_length * cfg.dec_width * cfg.vocab_size  # tied output projection
    queries = cfg.max_objects + 1
    heads = cfg.head_depth * _block(queries, cfg.dec_width, cfg.dec_mlp, keys=nv)
    heads += 2 * cfg.max_objects * cfg.dec_width * 3 * cfg.horizons
    if cfg.property_head:
        heads += 2 * cfg.max_objects * cfg.dec_width * 3 + 2 * cfg.dec_width
    return {"encoder": encoder, "decoder": decoder, "heads": heads, "total": encoder + decoder + heads}


def tubelet_embedding_flops(cfg: ModelConfig) -> int:
    return 2 * cfg.video_tokens * (cfg.tubelet * cfg.patch * cfg.patch * 3) * cfg.enc_width


def train_flops_per_example(cfg: ModelConfig) -> int:
    """Model FLOPs of one training step per example (forward + backward, no recomputation)."""
    return 3 * forward_flops(cfg)["total"] - tubelet_embedding_flops(cfg)


def peak_flops(device_kind: str) -> float | None:
    """The device's dense bf16 peak, or None where it is not known (CPUs)."""
    if device_kind in PEAK_FLOPS:
        return PEAK_FLOPS[device_kind]
    for name in sorted(PEAK_FLOPS, key=len, reverse=True):  # the most specific name first
        if device_kind.startswith(name):
            return PEAK_FLOPS[name]
    return None

"""Pretrained SigLIP-style ViT weights onto the video encoder.

Two layouts are read:

- big_vision `.npz` (`img/embedding/kernel`, `img/pos_embedding`,
  `img/Transformer/encoderblock_{i}/...`, also the scanned
  `encoderblock/...` with a leading layer axis; an optional `params/` prefix);
- Hugging Face `.safetensors` (`vision_model.embeddings.patch_embedding.weight`,
  `vision_model.encoder.layers.{i}.self_attn.q_proj.weight`, ...; torch layout).

Both are turned into one layout, checked against the model's config (width,
depth, MLP width, patch, heads where the file records them), and written into
`model.encoder` (heads are read from the big_vision kernels, or from a
Hugging Face `config.json` beside the weights). An image ViT becomes a video encoder by spreading its patch
kernel evenly over the tubelet's frames (a still video then embeds exactly as
the image) and starting the time position embedding at zero; a position table
for another grid is resized bilinearly. The image-text head and the text tower
are ignored. Every problem is reported by name: a missing tensor, a shape that
does not fit, a file with no vision tower.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from physsim.model.vlm import VLM

_BLOCK_PARAMS = ("norm1.scale", "norm1.bias", "query.kernel", "query.bias", "key.kernel", "key.bias",
                 "value.kernel", "value.bias", "out.kernel", "out.bias", "norm2.scale", "norm2.bias",
                 "fc1.kernel", "fc1.bias", "fc2.kernel", "fc2.bias")


class PretrainedMismatchError(ValueError):
    """The checkpoint does not fit the model's encoder (names every problem found)."""


@dataclasses.dataclass
class LoadReport:
    path: str
    layout: str  # "big_vision" or "huggingface"
    loaded: int  # tensors written into the encoder
    ignored: list[str]  # tensors of the file not used (heads, text tower)
    resized_positions: tuple[tuple[int, int], tuple[int, int]] | None  # (from grid, to grid)


def read_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a `.npz` or `.safetensors` file, as float32 numpy arrays by name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pretrained checkpoint at {path}")
    from safetensors import SafetensorError, safe_open

    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                return {k: _float32(f[k], k) for k in f.files}
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="flax") as f:  # flax: bf16 tensors load too
                return {k: np.asarray(f.get_tensor(k).astype(jnp.float32)) for k in f.keys()}
    except (OSError, ValueError, SafetensorError) as e:  # truncated, or not an archive at all
        raise ValueError(f"cannot read pretrained checkpoint {path}: {e}") from e
    raise ValueError(f"pretrained checkpoint {path}: unknown format {path.suffix!r} (use .npz or .safetensors)")


def _float32(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype.kind == "V" and x.dtype.itemsize == 2:  # numpy saves bfloat16 as raw 2-byte records
        import ml_dtypes

        return x.view(ml_dtypes.bfloat16).astype(np.float32)
    if x.dtype.kind not in "fiu":
        raise ValueError(f"tensor {name!r} has dtype {x.dtype}, not a number type")
    return x.astype(np.float32)


def recorded_heads(path: Path) -> int | None:
    """Attention heads from a Hugging Face `config.json` beside the weights (the .safetensors file lacks them)."""
    config = path.parent / "config.json"
    if not config.is_file():
        return None
    data = json.loads(config.read_text())
    vision = data.get("vision_config", data)
    return vision.get("num_attention_heads")


def _layers(names, pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for n in names if (m := re.match(pattern, n))})


def _from_big_vision(t: dict[str, np.ndarray]) -> tuple[dict, list[str], int | None]:
    t = {k.removeprefix("params/"): v for k, v in t.items()}
    root = "img/Transformer/"
    canonical = {
        "patch.kernel": t.get("img/embedding/kernel"),  # (p, p, 3, D)
        "patch.bias": t.get("img/embedding/bias"),
        "pos": None if "img/pos_embedding" not in t else t["img/pos_embedding"].reshape(-1, t["img/pos_embedding"].shape[-1]),
        "final.scale": t.get(root + "encoder_norm/scale"),
        "final.bias": t.get(root + "encoder_norm/bias"),
    }
    names = {
        "norm1.scale": "LayerNorm_0/scale", "norm1.bias": "LayerNorm_0/bias",
        "norm2.scale": "LayerNorm_1/scale", "norm2.bias": "LayerNorm_1/bias",
        "fc1.kernel": "MlpBlock_0/Dense_0/kernel", "fc1.bias": "MlpBlock_0/Dense_0/bias",
        "fc2.kernel": "MlpBlock_0/Dense_1/kernel", "fc2.bias": "MlpBlock_0/Dense_1/bias",
        **{f"{p}.{w}": f"MultiHeadDotProductAttention_0/{p}/{w}" for p in ("query", "key", "value", "out") for w in ("kernel", "bias")},
    }
    scanned = any(k.startswith(root + "encoderblock/") for k in t)
    if scanned:
        depth = len(next(v for k, v in t.items() if k.startswith(root + "encoderblock/")))
        block = lambda i, name: None if root + "encoderblock/" + name not in t else t[root + "encoderblock/" + name][i]  # noqa: E731
    else:
        depth = len(_layers(t, re.escape(root) + r"encoderblock_(\d+)/"))
        block = lambda i, name: t.get(f"{root}encoderblock_{i}/{name}")  # noqa: E731
    heads = None
    for i in range(depth):
        for ours, theirs in names.items():
            x = block(i, theirs)
            if x is not None and ours.startswith(("query", "key", "value")):
                heads = x.shape[-2] if x.ndim >= 2 and ours.endswith("kernel") else heads
                x = x.reshape(x.shape[0], -1) if ours.endswith("kernel") else x.reshape(-1)  # (D, H, Dh) -> (D, H*Dh)
            elif x is not None and ours == "out.kernel":
                x = x.reshape(-1, x.shape[-1])  # (H, Dh, D) -> (H*Dh, D)
            canonical[f"block{i}.{ours}"] = x
    used = {"img/embedding/kernel", "img/embedding/bias", "img/pos_embedding", root + "encoder_norm/scale",
            root + "encoder_norm/bias"}
    ignored = [k for k in t if k.startswith("img/") and k not in used and not k.startswith(root + "encoderblock")]
    ignored += [k for k in t if not k.startswith("img/")]
    return canonical, ignored, heads


def _from_huggingface(t: dict[str, np.ndarray]) -> tuple[dict, list[str], None]:
    # A SigLIP tower stands at "vision_model." alone or inside a larger model
    # (PaliGemma: "vision_tower.vision_model."); everything else is ignored.
    root = next(n[: n.index("vision_model.") + len("vision_model.")] for n in t if "vision_model." in n)
    weight = lambda name: None if name not in t else t[name].T  # noqa: E731  torch (out, in) -> (in, out)
    conv = t.get(root + "embeddings.patch_embedding.weight")  # (D, 3, p, p)
    if conv is not None and conv.ndim != 4:
        raise PretrainedMismatchError(f"patch embedding {root}embeddings.patch_embedding.weight has shape "
                                      f"{conv.shape}; a convolution (width, 3, patch, patch) was expected")
    canonical = {
        "patch.kernel": None if conv is None else conv.transpose(2, 3, 1, 0),
        "patch.bias": t.get(root + "embeddings.patch_embedding.bias"),
        "pos": t.get(root + "embeddings.position_embedding.weight"),
        "final.scale": t.get(root + "post_layernorm.weight"),
        "final.bias": t.get(root + "post_layernorm.bias"),
    }
    depth = len(_layers(t, re.escape(root) + r"encoder\.layers\.(\d+)\."))
    linear = {"query": "self_attn.q_proj", "key": "self_attn.k_proj", "value": "self_attn.v_proj",
              "out": "self_attn.out_proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}
    for i in range(depth):
        layer = f"{root}encoder.layers.{i}."
        for ours, theirs in linear.items():
            canonical[f"block{i}.{ours}.kernel"] = weight(layer + theirs + ".weight")
            canonical[f"block{i}.{ours}.bias"] = t.get(layer + theirs + ".bias")
        for ours, theirs in (("norm1", "layer_norm1"), ("norm2", "layer_norm2")):
            canonical[f"block{i}.{ours}.scale"] = t.get(layer + theirs + ".weight")
            canonical[f"block{i}.{ours}.bias"] = t.get(layer + theirs + ".bias")
    ignored = [k for k in t if not k.startswith((root + "embeddings.", root + "encoder.", root + "post_layernorm."))]
    return canonical, ignored, None


def vision_weights(tensors: dict[str, np.ndarray], path: str = "") -> tuple[str, dict, list[str], int | None]:
    """(layout, canonical tensors by our names, ignored names, heads if recorded) of a SigLIP-style file."""
    names = list(tensors)
    if any(n.removeprefix("params/").startswith("img/") for n in names):
        return ("big_vision", *_from_big_vision(tensors))
    if any("vision_model." in n for n in names):
        return ("huggingface", *_from_huggingface(tensors))
    raise PretrainedMismatchError(
        f"{path}: no SigLIP vision tower found: expected tensors under 'img/' (big_vision .npz) or "
        f"'vision_model.' (Hugging Face .safetensors); the file has e.g. {names[:5]}"
    )


def _resize_positions(pos: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    side = int(round(np.sqrt(pos.shape[0])))
    table = jnp.asarray(pos.reshape(side, side, -1))
    return np.asarray(jax.image.resize(table, (*grid, pos.shape[-1]), "bilinear")).reshape(grid[0] * grid[1], -1)


def load_vision_encoder(model: VLM, path: str | Path) -> LoadReport:
    """Writes a SigLIP-style ViT checkpoint into `model.encoder` (in place); raises on any mismatch."""
    cfg = model.config
    path = Path(path)
    layout, w, ignored, heads = vision_weights(read_tensors(path), str(path))
    heads = heads if heads is not None else recorded_heads(path)
    problems = []
    depth = len({k.split(".")[0] for k in w if k.startswith("block")})
    if depth != cfg.enc_depth:
        problems.append(f"{depth} encoder layers in the file, model.enc_depth={cfg.enc_depth}")
    if heads is not None and heads != cfg.enc_heads:
        problems.append(f"{heads} attention heads in the file, model.enc_heads={cfg.enc_heads}")
    kernel = w.get("patch.kernel")
    if kernel is not None and kernel.shape[:3] != (cfg.patch, cfg.patch, 3):
        problems.append(f"patch kernel {kernel.shape[:3]} in the file, model.patch={cfg.patch} (expects ({cfg.patch}, {cfg.patch}, 3))")
    d, m = cfg.enc_width, cfg.enc_mlp
    expected = {"patch.kernel": (cfg.patch, cfg.patch, 3, d), "patch.bias": (d,), "final.scale": (d,), "final.bias": (d,)}
    for i in range(cfg.enc_depth):
        for name in _BLOCK_PARAMS:
            kind = name.split(".")[0]
            shape = {"fc1": (d, m), "fc2": (m, d)}.get(kind, (d, d)) if name.endswith("kernel") else (m,) if kind == "fc1" else (d,)
            expected[f"block{i}.{name}"] = shape
    for name, shape in expected.items():
        x = w.get(name)
        if x is None:
            problems.append(f"missing tensor for {name}")
        elif x.shape != shape:
            problems.append(f"{name}: shape {x.shape} in the file, the model needs {shape}")
    pos = w.get("pos")
    if pos is None:
        problems.append("missing tensor for the position embedding")
    elif pos.shape[-1] != d:
        problems.append(f"position embedding width {pos.shape[-1]} in the file, model.enc_width={d}")
    elif round(np.sqrt(pos.shape[0])) ** 2 != pos.shape[0]:
        problems.append(f"position table of {pos.shape[0]} entries is not a square grid (a class token? "
                        f"SigLIP has none)")
    if problems:
        shown = "\n  ".join(problems[:12]) + (f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else "")
        raise PretrainedMismatchError(f"pretrained encoder {path} ({layout} layout) does not fit the model:\n  {shown}")

    _, gh, gw = cfg.grid
    side = int(round(np.sqrt(pos.shape[0])))
    resized = None
    if (side, side) != (gh, gw):
        pos, resized = _resize_positions(pos, (gh, gw)), ((side, side), (gh, gw))
    enc = model.encoder
    dtype = cfg.params_dtype
    set_ = lambda param, x: param.set_value(jnp.asarray(x, dtype))  # noqa: E731
    tubelet = np.repeat(w["patch.kernel"][None] / cfg.tubelet, cfg.tubelet, axis=0)  # (pt, p, p, 3, D)
    set_(enc.embed.kernel, tubelet.reshape(-1, d))
    set_(enc.embed.bias, w["patch.bias"])
    set_(enc.pos_space, pos)
    set_(enc.pos_time, np.zeros(enc.pos_time.shape, np.float32))
    set_(enc.norm.scale, w["final.scale"])
    set_(enc.norm.bias, w["final.bias"])
    block = enc.blocks.layers  # every block's parameters, stacked along the first axis
    parts = {"norm1": block.norm1, "norm2": block.norm2, "query": block.attn.query, "key": block.attn.key,
             "value": block.attn.value, "out": block.attn.out, "fc1": block.mlp.fc1, "fc2": block.mlp.fc2}
    for name in _BLOCK_PARAMS:
        part, field = name.split(".")
        set_(getattr(parts[part], field), np.stack([w[f"block{i}.{name}"] for i in range(cfg.enc_depth)]))
    return LoadReport(path=str(path), layout=layout, loaded=len(expected) + 2, ignored=sorted(ignored),
                      resized_positions=resized)

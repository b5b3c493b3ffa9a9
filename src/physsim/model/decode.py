"""Answer decoding inside `jax.jit`: greedy or with a temperature, batched, with a KV cache.

The prefix (video tokens, question) and <bos> go through the decoder once,
filling each layer's key/value cache; then one token per step is appended at
its position until every answer has produced <eos> or `answer_length` tokens
are out (`lax.while_loop`, so a batch of short answers stops early). Tokens
after <eos> are <pad>. `generate_uncached` re-encodes the whole sequence at
every step; it is the reference the cached decoder is tested against.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from physsim.model.vlm import VLM, check_tokens


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    bos: int
    eos: int
    pad: int = 0

    @classmethod
    def of(cls, tokenizer) -> SpecialTokens:
        return cls(bos=tokenizer.bos_id, eos=tokenizer.eos_id, pad=tokenizer.pad_id)


def _choose(logits: jax.Array, key: jax.Array, temperature: jax.Array) -> jax.Array:
    """(B, V) logits -> (B,) tokens: argmax at temperature 0, else a sample of softmax(logits / T)."""
    sampled = jax.random.categorical(key, logits / jnp.maximum(temperature, 1e-6), axis=-1)
    return jnp.where(temperature > 0, sampled, jnp.argmax(logits, axis=-1)).astype(jnp.int32)


def _generate(model: VLM, video, frame_mask, question, key, temperature, special: SpecialTokens):
    cfg = model.config
    batch, prefix = question.shape[0], cfg.prefix_length
    check_tokens(question, jnp.zeros((batch, cfg.answer_length), jnp.int32), cfg)
    tokens, valid = model.encode(video, frame_mask)
    key_valid = model.key_valid(valid, question, special.pad)
    bos = jnp.full((batch, 1), special.bos, jnp.int32)
    x = jnp.concatenate([tokens, model.embed_tokens(question), model.embed_tokens(bos)], axis=1)
    h, cache = model.decoder(x, jnp.arange(prefix + 1), key_valid, cache=model.empty_cache(batch), cache_index=0)
    keys = jax.random.split(key, cfg.answer_length)
    first = _choose(model.token_logits(h[:, -1]), keys[0], temperature)
    out = jnp.full((batch, cfg.answer_length), special.pad, jnp.int32).at[:, 0].set(first)

    def unfinished(carry):
        step, _, done, _, _, _ = carry
        return (step < cfg.answer_length) & ~done.all()

    # The parameters travel in the loop's carry: NNX's transforms (the blocks' scan) refuse a module whose
    # arrays are closed over from outside the loop's trace.
    graphdef, state = nnx.split(model)

    def next_token(carry):
        step, previous, done, out, cache, state = carry
        position = prefix + step
        model = nnx.merge(graphdef, state)
        h, cache = model.decoder(model.embed_tokens(previous[:, None]), position[None], key_valid,
                                 cache=cache, cache_index=position)
        token = jnp.where(done, special.pad, _choose(model.token_logits(h[:, 0]), keys[step], temperature))
        out = out.at[:, step].set(token)
        return step + 1, token, done | (token == special.eos), out, cache, state

    carry = (jnp.int32(1), first, first == special.eos, out, cache, state)
    return jax.lax.while_loop(unfinished, next_token, carry)[3]


@functools.partial(jax.jit, static_argnames=("graphdef", "special"))
def _generate_jit(graphdef, state, video, frame_mask, question, key, temperature, special):
    return _generate(nnx.merge(graphdef, state), video, frame_mask, question, key, temperature, special)


def generate(model: VLM, video: jax.Array, frame_mask: jax.Array, question: jax.Array, special: SpecialTokens,
             *, key: jax.Array | None = None, temperature: float = 0.0) -> jax.Array:
    """(B, La) int32 answer tokens, ending with <eos> then <pad>s (greedy when temperature is 0)."""
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 decodes greedily)")
    graphdef, state = nnx.split(model)
    key = jax.random.key(0) if key is None else key
    return _generate_jit(graphdef, state, video, frame_mask, question, key, jnp.float32(temperature), special)


def generate_uncached(model: VLM, video, frame_mask, question, special: SpecialTokens,
                      *, key: jax.Array | None = None, temperature: float = 0.0) -> jax.Array:
    """The same tokens as `generate`, by running the full forward pass once per answer position."""
    cfg = model.config
    batch = question.shape[0]
    keys = jax.random.split(jax.random.key(0) if key is None else key, cfg.answer_length)
    forward = nnx.jit(lambda m, answer_in: m(video, frame_mask, question, answer_in, pad_id=special.pad).logits)
    out = jnp.full((batch, cfg.answer_length), special.pad, jnp.int32)
    done = jnp.zeros(batch, bool)
    for step in range(cfg.answer_length):
        answer_in = jnp.concatenate([jnp.full((batch, 1), special.bos, jnp.int32), out[:, :-1]], axis=1)
        token = _choose(forward(model, answer_in)[:, step], keys[step], jnp.float32(temperature))
        token = jnp.where(done, special.pad, token)
        out = out.at[:, step].set(token)
        done = done | (token == special.eos)
    return out

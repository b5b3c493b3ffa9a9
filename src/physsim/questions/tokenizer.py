"""A deterministic word-level tokenizer built from the question templates.

Words of every template, option, unit and explanation, the ten digits and the
decimal point make up the vocabulary, so any answer is expressible: numbers
are written digit by digit with two decimals ("1.25" -> 1 . 2 5). The
vocabulary is sorted, versioned by a hash of its contents and saved with
checkpoints (`to_json` / `from_json`).

Encoding of fixed texts happens once on the host; numbers are encoded inside
`jax.jit` by `number_tokens`, with static output lengths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from physsim.questions.templates import FACTOR_WORDS, YES_NO, Template, context, words

PAD, BOS, EOS, SEP = "<pad>", "<bos>", "<eos>", "<sep>"
SPECIALS = (PAD, BOS, EOS, SEP)
DIGITS = tuple("0123456789")
NUMBER_SYMBOLS = DIGITS + (".", "-")
INT_DIGITS = 4  # numbers up to 9999.99
DEC_DIGITS = 2
NUMBER_LENGTH = 1 + INT_DIGITS + 1 + DEC_DIGITS  # sign, integer digits, point, decimals


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    vocab: tuple[str, ...]

    def __post_init__(self):
        if self.vocab[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a vocabulary starts with the special tokens {SPECIALS}")
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError("the vocabulary has duplicate tokens")

    @property
    def size(self) -> int:
        return len(self.vocab)

    @property
    def version(self) -> str:
        return hashlib.sha256("\n".join(self.vocab).encode()).hexdigest()[:12]

    @property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def id(self, token: str) -> int:
        try:
            return self.index[token]
        except KeyError:
            raise ValueError(f"token {token!r} is not in the vocabulary (version {self.version})") from None

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def eos_id(self) -> int:
        return self.id(EOS)

    @property
    def bos_id(self) -> int:
        return self.id(BOS)

    def encode(self, text: str, *, length: int | None = None, eos: bool = False) -> np.ndarray:
        """Token ids of `text` (+ <eos>), padded with <pad> to `length` when given."""
        ids = [self.id(w) for w in words(text)] + ([self.eos_id] if eos else [])
        if length is None:
            return np.asarray(ids, np.int32)
        if len(ids) > length:
            raise ValueError(f"{text!r} is {len(ids)} tokens, longer than the static length {length}")
        return np.asarray(ids + [self.pad_id] * (length - len(ids)), np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids up to the first <eos>; <pad>, <bos> and <sep> are dropped. An id beyond the
        vocabulary (a model's output layer may be wider than it) reads as "<unk>", which no answer matches."""
        out: list[str] = []
        for i in np.asarray(ids).reshape(-1).tolist():
            token = self.vocab[int(i)] if 0 <= int(i) < len(self.vocab) else "<unk>"
            if token == EOS:
                break
            if token in SPECIALS:
                continue
            glue = bool(out) and (token in ("?", ",", ".", "%") or (token in NUMBER_SYMBOLS and out[-1][-1] in NUMBER_SYMBOLS))
            if glue:
                out[-1] += token
            else:
                out.append(token)
        return " ".join(out)

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "vocab": list(self.vocab)})

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        data = json.loads(text)
        tok = cls(tuple(data["vocab"]))
        if tok.version != data.get("version"):
            raise ValueError(f"tokenizer vocabulary does not match its version {data.get('version')!r}")
        return tok


def build(templates: Sequence[Template], extra_words: Iterable[str] = ()) -> Tokenizer:
    """The vocabulary covering `templates` (sorted, so the same templates give the same ids)."""
    found: set[str] = set(YES_NO) | set(NUMBER_SYMBOLS) | set(words(context(0.0, 0.0, 1.0)))
    found.update(words(" ".join(FACTOR_WORDS.values()) + " times"))  # any factor a family config sets
    for t in templates:
        for text in (*t.paraphrases, *t.options, t.unit, *t.explanation):
            found.update(words(re.sub(r"\{\w+\}", " ", text)))
    for w in extra_words:
        found.update(words(w))
    return Tokenizer(SPECIALS + tuple(sorted(found - set(SPECIALS))))


def number_tokens(tok: Tokenizer, value: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Token ids (NUMBER_LENGTH,) and keep-mask of `value` written with two decimals.

    Jit-able: leading zeros and a '+' sign are masked out rather than removed,
    so the shape is static; `compact` squeezes the kept tokens together.
    """
    digit_ids = jnp.asarray([tok.id(d) for d in DIGITS], jnp.int32)
    n = jnp.round(jnp.abs(value) * 10**DEC_DIGITS).astype(jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
    n = jnp.minimum(n, 10 ** (INT_DIGITS + DEC_DIGITS) - 1)
    powers = 10 ** jnp.arange(INT_DIGITS + DEC_DIGITS - 1, -1, -1)
    digits = (n // powers) % 10
    int_digits, dec_digits = digits[:INT_DIGITS], digits[INT_DIGITS:]
    # Keep an integer digit from the first non-zero one on; always keep the units digit.
    seen = jnp.cumsum(int_digits) > 0
    keep_int = seen.at[-1].set(True)
    ids = jnp.concatenate([
        jnp.asarray([tok.id("-")], jnp.int32),
        digit_ids[int_digits],
        jnp.asarray([tok.id(".")], jnp.int32),
        digit_ids[dec_digits],
    ])
    negative = (value < 0) & (n > 0)
    keep = jnp.concatenate([negative[None], keep_int, jnp.ones(1 + DEC_DIGITS, bool)])
    return ids, keep


def compact(ids: jax.Array, keep: jax.Array, length: int, pad_id: int = 0) -> jax.Array:
    """The kept entries of `ids`, in order, padded to `length` (static shapes, jit-able)."""
    position = jnp.cumsum(keep) - 1
    position = jnp.where(keep, position, length)  # dropped entries go out of range
    return jnp.full((length,), pad_id, ids.dtype).at[position].set(ids, mode="drop")

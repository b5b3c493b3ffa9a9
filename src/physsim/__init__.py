"""physsim: physics supervision for vision-language models, simulated in the JAX step.

Importing the package turns on JAX's persistent compilation cache (see
`physsim._cache`) so that a second run of anything, including the test suite
in a fresh clone, reuses the compiled MJX programs.
"""

from physsim import _cache

_cache.enable_compilation_cache()

__version__ = "0.1.0"

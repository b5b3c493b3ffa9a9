"""physsim: physics supervision for vision-language models, simulated in the JAX step.

Importing the package sets an XLA:CPU flag without which large batched MJX
rollouts hang on the CPU (`physsim._xla`), and turns on JAX's persistent
compilation cache (`physsim._cache`) so that a second run of anything,
including the test suite in a fresh clone, reuses the compiled MJX programs.
"""

from physsim import _cache, _xla

_xla.avoid_cpu_scheduler_hang()
_cache.enable_compilation_cache()

__version__ = "0.1.0"

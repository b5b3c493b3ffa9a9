"""Questions asked of simulated worlds, their answers, and the tokenizer.

`templates` and `tokenizer` depend on nothing else in physsim (scene families
import them to declare their questions); `pipeline` builds whole jitted
batches: sample, simulate factual and counterfactual worlds, measure facts,
pick balanced questions, render the observation window.
"""

from physsim.questions.templates import KINDS, TASKS, Template
from physsim.questions.tokenizer import Tokenizer

__all__ = ["KINDS", "TASKS", "Template", "Tokenizer"]

"""The question vocabulary: templates, the tokenizer and the answer checker.

Scene families import it to declare their questions; it imports nothing else
of physsim but `_names`. Batches of questions about simulated worlds are made
by `physsim.episode`.
"""

from physsim.questions.templates import KINDS, TASKS, Template
from physsim.questions.tokenizer import Tokenizer

__all__ = ["KINDS", "TASKS", "Template", "Tokenizer"]

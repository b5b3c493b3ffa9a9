"""The vision-language model (Flax NNX): video encoder, prefix-LM decoder, slot head, decoding.

    from physsim import model
    cfg = model.config.get("tiny", vocab_size=tokenizer.size)
    vlm = model.build(cfg)
    out = vlm(video, frame_mask, question, model.teacher_forcing_inputs(answer, tokenizer.bos_id))
    tokens = model.generate(vlm, video, frame_mask, question, model.SpecialTokens.of(tokenizer))

`python -m physsim.model --sizes` prints the parameter count of each size.
"""

from physsim.model import config
from physsim.model.config import ModelConfig
from physsim.model.decode import SpecialTokens, generate, generate_uncached
from physsim.model.loss import LossWeights, Targets, loss_and_metrics, teacher_forcing_inputs
from physsim.model.vlm import PROPERTIES, VLM, Outputs, abstract, build, count_params, pad_frames

__all__ = [
    "PROPERTIES", "VLM", "LossWeights", "ModelConfig", "Outputs", "SpecialTokens", "Targets", "abstract", "build",
    "config", "count_params", "generate", "generate_uncached", "loss_and_metrics", "pad_frames",
    "teacher_forcing_inputs",
]

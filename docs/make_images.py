"""Regenerates docs/images/<family>.{png,gif}: one sampled world per family, 128x128.

    python docs/make_images.py
"""

from pathlib import Path

import jax
import numpy as np
from PIL import Image

import physsim.env

OUT = Path(__file__).parent / "images"
STRIP_FRAMES = (0, 10, 20, 30, 40, 50)  # 0 ... 2 s at 25 fps


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name in physsim.env.list():
        env = physsim.env.make(name)
        traj = env.rollout(env.reset(jax.random.key(3), batch_size=1), 2.0)
        video = env.render(traj, width=128, height=128)
        strip = np.concatenate([np.asarray(video[0, k]) for k in STRIP_FRAMES], axis=1)
        Image.fromarray(strip).save(OUT / f"{name}.png")
        physsim.env.save_video(video, OUT / f"{name}.gif", fps=env.layout.fps)
        print(OUT / f"{name}.png")


if __name__ == "__main__":
    main()

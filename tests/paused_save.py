"""`python -m physsim.train` that pauses inside the save of one checkpoint, for tests/test_reliability.py.

With PHYSSIM_TEST_PAUSE_SAVE=<step>, the save of that step writes every file
into orbax's temporary directory and then, where orbax would rename it into
place, prints "PAUSED IN SAVE <step> <temporary directory>" and sleeps: the
test SIGKILLs the process there, in the middle of the save. (The hook wraps
orbax's AtomicRenameTemporaryPath.finalize, the rename that makes a
checkpoint complete on a local file system.)
"""

import asyncio
import os
import sys

from orbax.checkpoint._src.path import atomicity

from physsim.train.__main__ import main

PAUSE = os.environ["PHYSSIM_TEST_PAUSE_SAVE"]
_finalize = atomicity.AtomicRenameTemporaryPath.finalize


async def finalize(self):
    if self.get_final().name == PAUSE:
        print(f"PAUSED IN SAVE {PAUSE} {self.get()}", flush=True)
        await asyncio.sleep(3600)
    await _finalize(self)


atomicity.AtomicRenameTemporaryPath.finalize = finalize

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

import sys

from physsim.bench import main

sys.exit(main())

import sys

from physsim.validate import main

sys.exit(main())

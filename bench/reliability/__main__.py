import sys

from bench.reliability.runner import main

sys.exit(main())

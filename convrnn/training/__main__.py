import sys

from convrnn.training.cli import main

sys.exit(main())

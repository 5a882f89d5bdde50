import sys

from neurozoo.convrnn.training.cli import main

sys.exit(main())

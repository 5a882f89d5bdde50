import sys

from neurozoo.convrnn.training.cli import main
from neurozoo.datasets.termination import exit_status

sys.exit(exit_status(main()))  # 130 after a stop, not a death by SIGINT (exit_status says why)

from neurozoo.convrnn.training.cli import main
from neurozoo.convrnn.training.distributed import exit_process
from neurozoo.datasets.termination import exit_status

exit_process(exit_status(main()))  # 130 after a stop, not a death by SIGINT (exit_status says why)

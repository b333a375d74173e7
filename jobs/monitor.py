"""spark-submit entry point: ``spark-submit jobs/monitor.py --env E --run-date D``."""

import sys

from decisionlake.jobs.monitor import main

if __name__ == "__main__":
    sys.exit(main())

"""spark-submit entry point: ``spark-submit jobs/export_call_list.py --env E --run-date D``."""

import sys

from decisionlake.jobs.export_call_list import main

if __name__ == "__main__":
    sys.exit(main())

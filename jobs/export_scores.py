"""spark-submit entry point: ``spark-submit jobs/export_scores.py --env E --run-date D``."""

import sys

from decisionlake.jobs.export_scores import main

if __name__ == "__main__":
    sys.exit(main())

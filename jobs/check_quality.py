"""spark-submit entry point: ``spark-submit jobs/check_quality.py --env E --run-date D``."""

import sys

from decisionlake.jobs.check_quality import main

if __name__ == "__main__":
    sys.exit(main())

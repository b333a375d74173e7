"""spark-submit entry point: ``spark-submit jobs/score.py --env E --run-date D``."""

import sys

from decisionlake.jobs.score import main

if __name__ == "__main__":
    sys.exit(main())

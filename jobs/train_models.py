"""spark-submit entry point: ``spark-submit jobs/train_models.py --env E --run-date D``."""

import sys

from decisionlake.jobs.train_models import main

if __name__ == "__main__":
    sys.exit(main())

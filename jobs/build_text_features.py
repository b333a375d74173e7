"""spark-submit entry point: ``spark-submit jobs/build_text_features.py --env E --run-date D``."""

import sys

from decisionlake.jobs.build_text_features import main

if __name__ == "__main__":
    sys.exit(main())

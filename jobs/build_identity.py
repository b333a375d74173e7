"""spark-submit entry point: ``spark-submit jobs/build_identity.py --env E --run-date D``."""

import sys

from decisionlake.jobs.build_identity import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m rtrl_ref.evaluate`: score a run's checkpoint, or a random policy.

The command lives in `rtrl_ref.r2ac.evaluate`.
"""

import sys

from rtrl_ref.r2ac.evaluate import main

if __name__ == "__main__":
    sys.exit(main())

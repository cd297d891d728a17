"""`python -m rtrl_ref.train`: train an R2AC agent.

The command lives in `rtrl_ref.r2ac.train`.
"""

import sys

from rtrl_ref.r2ac.train import main

if __name__ == "__main__":
    sys.exit(main())

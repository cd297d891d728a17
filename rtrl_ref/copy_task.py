"""`python -m rtrl_ref.copy_task`: the copy task, trained fully online with RTRL, in a run folder.

config.json, log.csv, curve.png and an atomic checkpoint; --resume RUN, --evaluate RUN, and
--loss-on all|recall|paper-quirk (which targets the loss trains). See --help. The command lives in
`rtrl_ref.r2ac.copy_online`.
"""

import sys

from rtrl_ref.r2ac.copy_online import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m jaxseq.studies.translation ...`: the same actions as `jaxseq translate`."""
import sys

from jaxseq.studies.translation.cli import main

sys.exit(main())

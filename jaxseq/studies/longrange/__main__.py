"""`python -m jaxseq.studies.longrange ...`: the same options as `jaxseq longrange`."""
import sys

from jaxseq.studies.longrange.cli import main

sys.exit(main())

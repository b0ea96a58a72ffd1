"""`python -m jaxseq.studies.scaling.report --in DIR`: `jaxseq report` without importing jaxseq.cli."""
from jaxseq.studies.scaling.report.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

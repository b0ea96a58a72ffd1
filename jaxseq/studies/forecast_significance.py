"""Moved to `jaxseq.studies.forecasting.significance` (issue 34); this name re-exports it."""
from jaxseq.studies.forecasting.significance import *  # noqa: F401,F403

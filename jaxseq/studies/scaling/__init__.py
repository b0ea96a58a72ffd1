"""The scaling study: speed, memory and parallel scaling against length, batch and devices.

`sweep` (`jaxseq scale`) measures points into `results.jsonl`; `report` (`jaxseq report`) writes
`REPORT.md` and plots from it; `study` (`jaxseq study`, what `make study` runs) does bench ops, the
sweep and the report into one folder.
"""

"""Promotion: whether a finished job's model is served (the gate), and the log of every
change of the served model (``state/promotions.jsonl``)."""

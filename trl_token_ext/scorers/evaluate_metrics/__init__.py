"""Offline ``evaluate`` metric scripts (loaded by path with ``evaluate.load``), backed by sacrebleu / rouge-score."""

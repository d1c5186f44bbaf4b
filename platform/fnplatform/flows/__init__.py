"""Flows: run hosts, detached actors that hold the unfinished runs (state, scheduling, retries, resume
from checkpoints), the ``/flows`` gateway, and the checkpoints in the registry's database. May import
``serving`` and ``storage``."""

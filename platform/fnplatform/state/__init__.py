"""Shared state: the detached actor behind ``fn.Dict`` and ``fn.Queue``, durable in the registry's database.
May import ``serving`` and ``storage``."""

"""fnplatform: the platform behind ``fn``, grouped by the process each part runs in.

- ``storage``: the registry (functions, versions, keys), its database base, and blobs (local or S3). No Ray.
- ``bundles``: bundle manifests, packaging and discovery. No Ray; the CLI uses it.
- ``serving``: what runs in every replica and gateway. Never imports ``control``, ``storage.registry``,
  SQLAlchemy or FastAPI: its import closure is paid by every cold start.
- ``flows``: the detached flow-run actors, the flows gateway and their checkpoints. May import ``serving`` and ``storage``.
- ``jobs``: function calls that outlive a request: the job runner actor, the jobs gateway, webhooks. Beside ``flows``
  (neither imports the other); may import ``serving`` and ``storage``.
- ``state``: the shared-state server (``fn.Dict``, ``fn.Queue``), a detached actor over the database. Beside ``flows``
  and ``jobs``; may import ``serving`` and ``storage``.
- ``control``: the control-plane process (server, API, deploy jobs, deployer, settings, the local Ray). May import all.

``pools``, ``keys``, ``deadlines`` and ``logtext`` (the log line format) are shared leaves.
``tests/unit/test_layers.py`` holds these rules.
"""

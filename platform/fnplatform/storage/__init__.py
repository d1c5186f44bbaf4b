"""The platform's durable state: the registry (functions, versions, keys) on SQLite or PostgreSQL, and
blobs (bundles, artifacts, flow values) in a local folder or S3. Runs in the control plane (and
flow actors, for checkpoints); never imports Ray."""

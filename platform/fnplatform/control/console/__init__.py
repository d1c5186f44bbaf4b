"""The web console at the control plane's root URL: server-rendered pages over the registry, the hub's metrics
and the flows' checkpoints (docs/observability.md, "Console")."""

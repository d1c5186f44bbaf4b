"""The control-plane process: the HTTP API, deploy jobs, the deployer that reconciles the registry
into Serve, settings, the local Ray and its warm worker pool. May import every other part."""

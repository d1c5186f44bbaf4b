"""Bundles: the deterministic zip of a project, its manifest, and the discovery of its decorated
functions in a subprocess. Used by the CLI and the control plane (and replicas read manifests);
never imports Ray."""

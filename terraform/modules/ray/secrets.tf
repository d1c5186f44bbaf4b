# The fn namespace's secrets, as Kubernetes Secrets (EKS envelope-encrypts them with its KMS key,
# modules/eks) that pods read by secretKeyRef: nothing of them sits in a pod spec, in the rendered
# RayCluster manifest, or in the init arguments Ray and Serve keep and show. Their values are in the
# Terraform state, like the database password already is: keep the state bucket private.

locals {
  ray_auth_secret     = "fn-ray-auth"
  database_url_secret = "fn-database-url"
  admin_key_secret    = "fn-admin-key"
  secrets_key_secret  = "fn-secrets-key"
  metrics_key_secret  = "fn-metrics-key"
}

# Ray's cluster token (RAY_AUTH_MODE=token): every Ray pod, the autoscaler and the control plane
# (its Ray client) present it; a process without it cannot join, call GCS or attach a driver.
# Letters and digits only: safe in an Authorization header as it is.
resource "random_password" "ray_auth_token" {
  length  = 64
  special = false
}

# The bootstrap admin API key (FN_ADMIN_KEY of the control plane): the registry stores only its hash,
# and a restart reuses it instead of minting another. 48 letters and digits (about 285 bits).
resource "random_password" "admin_key" {
  length  = 48
  special = false
}

# The scraper's API key (FN_METRICS_KEY of the control plane): role invoke, no scope, stored only as its
# hash, the least GET /metrics takes. Never the admin key: a scraper's copy must not mint keys or deploy.
resource "random_password" "metrics_key" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "ray_auth" {
  metadata {
    name      = local.ray_auth_secret
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  # The key name KubeRay's own authOptions (KubeRay 1.5.1+) reads, so a later switch can reuse it.
  data = { auth_token = random_password.ray_auth_token.result }
  type = "Opaque"
}

# FN_DATABASE_URL: the control plane and the api-pool Ray pods (where the flows gateway and run
# actors checkpoint) read it; the cpu and gpu pools, which only run user functions, do not get it.
resource "kubernetes_secret_v1" "database_url" {
  metadata {
    name      = local.database_url_secret
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  data = { url = var.database_url }
  type = "Opaque"
}

resource "kubernetes_secret_v1" "admin_key" {
  metadata {
    name      = local.admin_key_secret
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  data = { api_key = random_password.admin_key.result }
  type = "Opaque"
}

resource "kubernetes_secret_v1" "metrics_key" {
  metadata {
    name      = local.metrics_key_secret
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  data = { api_key = random_password.metrics_key.result }
  type = "Opaque"
}

# The same key where the scraper runs (metrics.tf): a pod mounts only Secrets of its own namespace, and
# Prometheus reads the key as a file (credentials_file), so this copy is what its pods mount.
resource "kubernetes_secret_v1" "metrics_key_scraper" {
  count = local.metrics_scrape ? 1 : 0

  metadata {
    name      = local.metrics_key_secret
    namespace = var.metrics_scraper.namespace
  }
  data = { api_key = random_password.metrics_key.result }
  type = "Opaque"
}

# FN_SECRETS_KEY, the master key of `fnctl secrets` (AES-256-GCM, 32 bytes as 64 hex digits): only the
# control plane reads it. Its FN_HOME is ephemeral, so a generated key file would die with the pod and
# every secret with it; this Secret (KMS-encrypted by EKS) keeps the key across restarts.
resource "random_id" "secrets_key" {
  byte_length = 32
}

resource "kubernetes_secret_v1" "secrets_key" {
  metadata {
    name      = local.secrets_key_secret
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  data = { key = random_id.secrets_key.hex }
  type = "Opaque"
}

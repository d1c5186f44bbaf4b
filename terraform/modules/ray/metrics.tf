# The Prometheus scrape wiring of GET /metrics (docs/observability.md), without Prometheus itself or
# its operator's CRDs (no ServiceMonitor): the repo deploys no Prometheus, so this hands an existing one,
# in metrics_scraper.namespace, what it needs and nothing more:
#   - the Secret fn-metrics-key (secrets.tf), a copy of the control plane's FN_METRICS_KEY, to mount;
#   - the ConfigMap fn-prometheus-scrape, a scrape_config_files file (Prometheus 2.43+) with one job, fn,
#     that reads that key as a file (the key never sits in a config or a pod spec);
#   - a network policy that admits the scraper's pods to the control plane's port.
# The scrape goes to a ClusterIP Service on the control plane's own port, in the cluster: the NLB's
# listener is 443 with TLS or the API port without, and the scraper should not hairpin through an NLB.
# metrics_scraper.namespace empty (the default): no scrape wiring; the key and the Service still exist.

locals {
  metrics_scrape         = var.metrics_scraper.namespace != ""
  control_plane_internal = "fn-control-plane-internal" # the control plane's in-cluster Service
  prometheus_scrape_yaml = templatefile("${path.module}/prometheus-scrape.yaml.tftpl", {
    job_name  = "fn"
    service   = local.control_plane_internal
    namespace = var.namespace
    port      = var.control_plane.port
    key_dir   = var.metrics_scraper.key_dir
  })
}

# The control plane's API inside the cluster (plain HTTP on its own port; nothing of it leaves the cluster).
resource "kubernetes_service_v1" "control_plane_internal" {
  metadata {
    name      = local.control_plane_internal
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }

  spec {
    type     = "ClusterIP"
    selector = { "app.kubernetes.io/name" = local.control_plane_name }

    port {
      name        = "http"
      protocol    = "TCP"
      port        = var.control_plane.port
      target_port = var.control_plane.port
    }
  }
}

resource "kubernetes_config_map_v1" "prometheus_scrape" {
  count = local.metrics_scrape ? 1 : 0

  metadata {
    name      = "fn-prometheus-scrape"
    namespace = var.metrics_scraper.namespace
  }
  data = { "fn.yaml" = local.prometheus_scrape_yaml }
}

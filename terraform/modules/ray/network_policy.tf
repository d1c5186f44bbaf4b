# Network policies of the fn namespace (enforced by the VPC CNI's network policy agent,
# enableNetworkPolicy in modules/eks). Nothing reaches a pod here unless a policy below admits it:
#   - Ray's ports on the Ray pods (GCS 6379, Ray client 10001, dashboard 8265 and agent 52365, and the
#     node manager, object manager and worker ports Ray picks at random) from the Ray pods and the
#     control plane only;
#   - Serve's HTTP ingress (8000, head pod) and the control-plane API from internal_client_cidrs, the
#     ranges the internal NLBs admit (the NLBs' own addresses are in the VPC CIDR, which it includes);
#   - the control-plane API from the Prometheus pods of metrics_scraper (metrics.tf), when it is set.
# Ray token authentication (secrets.tf) is the second lock on the same doors.

locals {
  ray_pods           = { "ray.io/cluster" = var.name }
  ray_head_pod       = { "ray.io/cluster" = var.name, "ray.io/node-type" = "head" }
  control_plane_pods = { "app.kubernetes.io/name" = local.control_plane_name }
}

resource "kubernetes_network_policy_v1" "default_deny" {
  metadata {
    name      = "default-deny-ingress"
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  spec {
    pod_selector {}
    policy_types = ["Ingress"]
  }
}

resource "kubernetes_network_policy_v1" "ray_internal" {
  metadata {
    name      = "ray-from-platform-pods"
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  spec {
    pod_selector {
      match_labels = local.ray_pods
    }
    policy_types = ["Ingress"]
    ingress {
      from {
        pod_selector {
          match_labels = local.ray_pods
        }
      }
      from {
        pod_selector {
          match_labels = local.control_plane_pods
        }
      }
    }
  }
}

resource "kubernetes_network_policy_v1" "serve_ingress" {
  metadata {
    name      = "serve-from-load-balancer"
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  spec {
    pod_selector {
      match_labels = local.ray_head_pod
    }
    policy_types = ["Ingress"]
    ingress {
      ports {
        port     = local.serve_port
        protocol = "TCP"
      }
      dynamic "from" {
        for_each = var.internal_client_cidrs
        content {
          ip_block {
            cidr = from.value
          }
        }
      }
    }
  }
}

resource "kubernetes_network_policy_v1" "control_plane_ingress" {
  metadata {
    name      = "control-plane-from-load-balancer"
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  spec {
    pod_selector {
      match_labels = local.control_plane_pods
    }
    policy_types = ["Ingress"]
    ingress {
      ports {
        port     = var.control_plane.port
        protocol = "TCP"
      }
      dynamic "from" {
        for_each = var.internal_client_cidrs
        content {
          ip_block {
            cidr = from.value
          }
        }
      }
    }
  }
}

# The scraper (metrics.tf): its pods, selected by namespace and labels together (one peer, so both must
# match), reach the control plane's port and nothing else in the namespace.
resource "kubernetes_network_policy_v1" "control_plane_from_scraper" {
  count = local.metrics_scrape ? 1 : 0

  metadata {
    name      = "control-plane-from-metrics-scraper"
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  spec {
    pod_selector {
      match_labels = local.control_plane_pods
    }
    policy_types = ["Ingress"]
    ingress {
      ports {
        port     = var.control_plane.port
        protocol = "TCP"
      }
      from {
        namespace_selector {
          match_labels = { "kubernetes.io/metadata.name" = var.metrics_scraper.namespace }
        }
        pod_selector {
          match_labels = var.metrics_scraper.pod_labels
        }
      }
    }
  }
}

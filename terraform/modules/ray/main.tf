# KubeRay operator, the fn RayCluster (api head + api/cpu/gpu worker groups), the fn control
# plane (fnctl server) and the two internal load balancers (Serve on 8000, control-plane API),
# plus the pod identities that give Ray read access (and write access to flow blobs) and the
# control plane write access to the bundles bucket. Secrets are in secrets.tf, network
# policies in network_policy.tf, the Prometheus scrape wiring in metrics.tf.

data "aws_caller_identity" "current" {}

locals {
  account_id         = data.aws_caller_identity.current.account_id
  ray_sa             = "ray"
  control_plane_sa   = "fn-control-plane"
  control_plane_name = "fn-control-plane"
  head_service       = "${var.name}-head-svc"
  ray_address        = "ray://${local.head_service}.${var.namespace}.svc.cluster.local:10001"
  serve_port         = 8000
  fn_home            = "/tmp/fn"

  # Every blob flows write (fnplatform.flows.run.BLOB_PREFIX; terraform/tests ties the two): the one
  # prefix the Ray pods may write, because the flows gateway and run actors run there.
  flow_blobs_prefix = "blobs/"

  raycluster_yaml = templatefile("${path.module}/raycluster.yaml.tftpl", {
    name                 = var.name
    namespace            = var.namespace
    ray_image            = var.ray_image
    ray_version          = var.ray_version
    service_account      = local.ray_sa
    ray_auth_secret      = local.ray_auth_secret
    database_url_secret  = local.database_url_secret
    aws_region           = var.region
    bundles_bucket       = var.bundles_bucket_name
    idle_timeout_seconds = var.idle_timeout_seconds
    node_pool_capacity   = var.node_pool_capacity
    api_resource         = var.pool_resources["api"]
    cpu_resource         = var.pool_resources["cpu"]
    gpu_resource         = var.pool_resources["gpu"]
    head_cpu             = var.head.cpu
    head_memory          = var.head.memory
    head_shm             = var.head.shm
    api_max_workers      = var.worker_groups.api.max_workers
    api_worker_cpu       = var.worker_groups.api.cpu
    api_worker_memory    = var.worker_groups.api.memory
    api_worker_shm       = var.worker_groups.api.shm
    cpu_max_workers      = var.worker_groups.cpu.max_workers
    cpu_worker_cpu       = var.worker_groups.cpu.cpu
    cpu_worker_memory    = var.worker_groups.cpu.memory
    cpu_worker_shm       = var.worker_groups.cpu.shm
    gpu_max_workers      = var.worker_groups.gpu.max_workers
    gpu_worker_cpu       = var.worker_groups.gpu.cpu
    gpu_worker_memory    = var.worker_groups.gpu.memory
    gpu_worker_shm       = var.worker_groups.gpu.shm
    gpu_worker_gpus      = var.worker_groups.gpu.gpus
  })

  # AWS Load Balancer Controller: internal NLB, pod IPs as targets.
  internal_nlb_annotations = {
    "service.beta.kubernetes.io/aws-load-balancer-type"            = "external"
    "service.beta.kubernetes.io/aws-load-balancer-scheme"          = "internal"
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type" = "ip"
  }

  # With a certificate, each NLB has one TLS listener on 443 (terminated at the NLB, TLS 1.2+) and no
  # plaintext listener at all: an NLB works at layer 4 and cannot answer with a redirect, and a
  # redirect would not help anyway, because the first request (with its bearer key) would already have
  # crossed the network in the clear.
  tls = var.tls_certificate_arn != ""
  tls_annotations = {
    "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"               = var.tls_certificate_arn
    "service.beta.kubernetes.io/aws-load-balancer-ssl-ports"              = "443"
    "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy" = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  }
  lb_annotations        = merge(local.internal_nlb_annotations, local.tls ? local.tls_annotations : {})
  lb_scheme             = local.tls ? "https" : "http"
  serve_lb_port         = local.tls ? 443 : local.serve_port
  control_plane_lb_port = local.tls ? 443 : var.control_plane.port
}

# --- namespace and operator --------------------------------------------------------------------------

resource "kubernetes_namespace_v1" "fn" {
  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of"          = "fn"
      "pod-security.kubernetes.io/enforce" = "baseline"
      "pod-security.kubernetes.io/warn"    = "restricted"
      "pod-security.kubernetes.io/audit"   = "restricted"
    }
  }
}

resource "helm_release" "kuberay_operator" {
  name             = "kuberay-operator"
  namespace        = "kuberay-system"
  create_namespace = true
  repository       = "https://ray-project.github.io/kuberay-helm/"
  chart            = "kuberay-operator"
  version          = var.kuberay_chart_version
  wait             = true
  timeout          = 600

  values = [yamlencode({
    nodeSelector = { "fn.platform/role" = "system" }
    tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    resources = {
      requests = { cpu = "100m", memory = "256Mi" }
      limits   = { memory = "512Mi" }
    }
  })]
}

# --- identities ----------------------------------------------------------------------------------------

resource "kubernetes_service_account_v1" "ray" {
  metadata {
    name      = local.ray_sa
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  # The head pod's autoscaler sidecar talks to the Kubernetes API (KubeRay binds its Role to
  # this account), so the token stays mounted.
  automount_service_account_token = true
}

resource "kubernetes_service_account_v1" "control_plane" {
  metadata {
    name      = local.control_plane_sa
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
  }
  automount_service_account_token = false
}

data "aws_iam_policy_document" "assume" {
  for_each = toset([local.ray_sa, local.control_plane_sa])

  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks-cluster-name"
      values   = [var.eks_cluster_name]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [var.namespace]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [each.value]
    }
  }
}

resource "aws_iam_role" "ray" {
  name_prefix        = "${var.eks_cluster_name}-ray-"
  assume_role_policy = data.aws_iam_policy_document.assume[local.ray_sa].json
}

resource "aws_iam_role" "control_plane" {
  name_prefix        = "${var.eks_cluster_name}-control-plane-"
  assume_role_policy = data.aws_iam_policy_document.assume[local.control_plane_sa].json
}

# Ray pods: read bundles (raylet downloads runtime_env working_dir s3:// zips) and flow blobs, write
# flow blobs (the flows gateway stores bytes inputs, run actors store step results), nothing else.
data "aws_iam_policy_document" "ray" {
  statement {
    sid       = "ListBundles"
    actions   = ["s3:ListBucket"]
    resources = [var.bundles_bucket_arn]
  }

  statement {
    sid       = "ReadBundles"
    actions   = ["s3:GetObject"]
    resources = ["${var.bundles_bucket_arn}/*"]
  }

  statement {
    sid       = "DecryptBundles"
    actions   = ["kms:Decrypt"]
    resources = [var.bundles_kms_key_arn]
  }

  statement {
    sid       = "WriteFlowBlobs"
    actions   = ["s3:PutObject"]
    resources = ["${var.bundles_bucket_arn}/${local.flow_blobs_prefix}*"]
  }

  dynamic "statement" {
    for_each = length(var.ray_write_prefixes) > 0 ? [1] : []
    content {
      sid       = "WriteAllowedPrefixes"
      actions   = ["s3:PutObject"]
      resources = [for p in var.ray_write_prefixes : "${var.bundles_bucket_arn}/${p}*"]
    }
  }

  # SSE-KMS: a PutObject needs a data key from the bucket's key.
  statement {
    sid       = "EncryptFlowBlobs"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.bundles_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "ray" {
  name   = "bundles-and-flow-blobs"
  role   = aws_iam_role.ray.id
  policy = data.aws_iam_policy_document.ray.json
}

# Control plane: read and write bundles (kms:GenerateDataKey is what an SSE-KMS PutObject
# needs). Its database URL and keys come from Kubernetes Secrets (secrets.tf), not from AWS.
data "aws_iam_policy_document" "control_plane" {
  statement {
    sid       = "ListBundles"
    actions   = ["s3:ListBucket"]
    resources = [var.bundles_bucket_arn]
  }

  statement {
    sid       = "ReadWriteBundles"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.bundles_bucket_arn}/*"]
  }

  statement {
    sid       = "BundlesKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.bundles_kms_key_arn]
  }

}

resource "aws_iam_role_policy" "control_plane" {
  name   = "control-plane"
  role   = aws_iam_role.control_plane.id
  policy = data.aws_iam_policy_document.control_plane.json
}

resource "aws_eks_pod_identity_association" "ray" {
  cluster_name    = var.eks_cluster_name
  namespace       = var.namespace
  service_account = local.ray_sa
  role_arn        = aws_iam_role.ray.arn
}

resource "aws_eks_pod_identity_association" "control_plane" {
  cluster_name    = var.eks_cluster_name
  namespace       = var.namespace
  service_account = local.control_plane_sa
  role_arn        = aws_iam_role.control_plane.arn
}

# --- the Ray cluster -------------------------------------------------------------------------------------

resource "kubectl_manifest" "raycluster" {
  yaml_body         = local.raycluster_yaml
  server_side_apply = true

  depends_on = [
    helm_release.kuberay_operator,
    kubernetes_service_account_v1.ray,
    aws_eks_pod_identity_association.ray,
    kubernetes_secret_v1.ray_auth,
    kubernetes_secret_v1.database_url,
  ]
}

# Serve's HTTP proxy on the head pod, through an internal NLB (TLS on 443 with a certificate).
# Nothing else of Ray leaves the cluster: no dashboard (8265), no GCS (6379), no Ray client (10001).
resource "kubernetes_service_v1" "serve" {
  metadata {
    name        = "fn-serve"
    namespace   = kubernetes_namespace_v1.fn.metadata[0].name
    annotations = local.lb_annotations
  }

  spec {
    type                        = "LoadBalancer"
    load_balancer_class         = "service.k8s.aws/nlb"
    load_balancer_source_ranges = var.internal_client_cidrs

    selector = {
      "ray.io/cluster"   = var.name
      "ray.io/node-type" = "head"
    }

    port {
      name        = local.lb_scheme
      protocol    = "TCP"
      port        = local.serve_lb_port
      target_port = local.serve_port
    }
  }

  depends_on = [kubectl_manifest.raycluster]
}

# --- the control plane (fnctl server) ----------------------------------------------------------------

resource "kubernetes_deployment_v1" "control_plane" {
  metadata {
    name      = local.control_plane_name
    namespace = kubernetes_namespace_v1.fn.metadata[0].name
    labels    = { "app.kubernetes.io/name" = local.control_plane_name }
  }

  spec {
    replicas = var.control_plane.replicas

    # One writer of the Serve config at a time.
    strategy {
      type = "Recreate"
    }

    selector {
      match_labels = { "app.kubernetes.io/name" = local.control_plane_name }
    }

    template {
      metadata {
        labels = {
          "app.kubernetes.io/name" = local.control_plane_name
          "fn.platform/pool"       = "api"
        }
        annotations = {
          "karpenter.sh/do-not-disrupt" = "true"
        }
      }

      spec {
        service_account_name            = local.control_plane_sa
        automount_service_account_token = false
        node_selector                   = { "karpenter.sh/nodepool" = "api" }

        security_context {
          run_as_non_root = true
          run_as_user     = 1000
          run_as_group    = 100
          fs_group        = 100
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name              = "control-plane"
          image             = var.ray_image
          image_pull_policy = "Always"
          command           = ["fnctl"]
          args              = var.control_plane.args

          env {
            name  = "FN_RAY_ADDRESS"
            value = local.ray_address
          }
          env {
            name  = "FN_S3_BUCKET"
            value = var.bundles_bucket_name
          }
          # Secrets by reference (secrets.tf): nothing of them in the pod spec or in Ray's init arguments.
          env {
            name = "FN_DATABASE_URL"
            value_from {
              secret_key_ref {
                name = local.database_url_secret
                key  = "url"
              }
            }
          }
          env {
            name = "FN_ADMIN_KEY"
            value_from {
              secret_key_ref {
                name = local.admin_key_secret
                key  = "api_key"
              }
            }
          }
          env {
            name = "FN_METRICS_KEY"
            value_from {
              secret_key_ref {
                name = local.metrics_key_secret
                key  = "api_key"
              }
            }
          }
          env {
            name = "FN_SECRETS_KEY"
            value_from {
              secret_key_ref {
                name = local.secrets_key_secret
                key  = "key"
              }
            }
          }
          # The Ray cluster requires its token (RAY_AUTH_MODE=token), the Ray client connection included.
          env {
            name  = "RAY_AUTH_MODE"
            value = "token"
          }
          env {
            name = "RAY_AUTH_TOKEN"
            value_from {
              secret_key_ref {
                name = local.ray_auth_secret
                key  = "auth_token"
              }
            }
          }
          env {
            name  = "AWS_REGION"
            value = var.region
          }
          env {
            name  = "AWS_DEFAULT_REGION"
            value = var.region
          }
          # FN_HOME (runtime files; no credentials.json, FN_ADMIN_KEY is set) and
          # the bundle cache live on the writable /tmp volume. The cache path is also handed
          # to replicas, so it must be writable in the Ray pods too (it is: /tmp).
          env {
            name  = "HOME"
            value = "/tmp"
          }
          env {
            name  = "FN_HOME"
            value = local.fn_home
          }
          env {
            name  = "FN_CACHE_DIR"
            value = "${local.fn_home}/cache/bundles"
          }

          port {
            name           = "http"
            container_port = var.control_plane.port
          }

          resources {
            requests = {
              cpu    = var.control_plane.cpu
              memory = var.control_plane.memory
            }
            limits = {
              cpu    = var.control_plane.cpu
              memory = var.control_plane.memory
            }
          }

          readiness_probe {
            tcp_socket {
              port = var.control_plane.port
            }
            initial_delay_seconds = 5
            period_seconds        = 10
          }

          liveness_probe {
            tcp_socket {
              port = var.control_plane.port
            }
            initial_delay_seconds = 30
            period_seconds        = 20
            failure_threshold     = 6
          }

          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }

        volume {
          name = "tmp"
          empty_dir {
            size_limit = "1Gi"
          }
        }
      }
    }
  }

  depends_on = [
    kubectl_manifest.raycluster,
    aws_eks_pod_identity_association.control_plane,
    kubernetes_service_account_v1.control_plane,
    kubernetes_secret_v1.database_url,
    kubernetes_secret_v1.admin_key,
    kubernetes_secret_v1.metrics_key,
    kubernetes_secret_v1.ray_auth,
  ]
}

resource "kubernetes_service_v1" "control_plane" {
  metadata {
    name        = local.control_plane_name
    namespace   = kubernetes_namespace_v1.fn.metadata[0].name
    annotations = local.lb_annotations
  }

  spec {
    type                        = "LoadBalancer"
    load_balancer_class         = "service.k8s.aws/nlb"
    load_balancer_source_ranges = var.internal_client_cidrs

    selector = { "app.kubernetes.io/name" = local.control_plane_name }

    port {
      name        = local.lb_scheme
      protocol    = "TCP"
      port        = local.control_plane_lb_port
      target_port = var.control_plane.port
    }
  }
}

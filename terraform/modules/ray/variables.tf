variable "eks_cluster_name" {
  type        = string
  description = "EKS cluster the pod identity associations belong to."
}

variable "region" {
  type        = string
  description = "AWS region; set as AWS_REGION in every Ray pod so the raylet's S3 downloads of runtime_env working_dir bundles find the bucket."
}

variable "name" {
  type        = string
  description = "Name of the RayCluster; KubeRay names its head Service <name>-head-svc."
  default     = "fn"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name))
    error_message = "name must be a short DNS label."
  }
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace of the RayCluster, the control plane and their Services."
  default     = "fn"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.namespace)) && !contains(["default", "kube-system", "kube-public"], var.namespace)
    error_message = "namespace must be a DNS label and not default, kube-system or kube-public."
  }
}

variable "ray_image" {
  type        = string
  description = "Image for Ray pods and the control plane: rayproject/ray of ray_version plus the fn packages (fn SDK, fnplatform, fnctl), boto3 and smart_open. Pin by tag or digest, never latest."

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[0-9a-f]{64})$", var.ray_image)) && !can(regex(":latest$", var.ray_image))
    error_message = "ray_image must carry an explicit tag (not latest) or a sha256 digest."
  }
}

variable "ray_version" {
  type        = string
  description = "Ray version inside ray_image (RayCluster.spec.rayVersion). Client and cluster must match for the control plane's ray:// connection."
  default     = "2.60.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.ray_version))
    error_message = "ray_version must be x.y.z."
  }
}

variable "kuberay_chart_version" {
  type        = string
  description = "Pinned version of the kuberay-operator Helm chart (https://ray-project.github.io/kuberay-helm/)."
  default     = "1.4.2"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.kuberay_chart_version))
    error_message = "kuberay_chart_version must be an exact x.y.z version."
  }
}

variable "pool_resources" {
  type        = map(string)
  description = "Ray custom resource of each node pool (api, cpu, gpu). Must equal fnplatform.pools.pool_resource(pool); terraform/tests checks it."

  validation {
    condition     = alltrue([for p in ["api", "cpu", "gpu"] : contains(keys(var.pool_resources), p)])
    error_message = "pool_resources must name the api, cpu and gpu pools."
  }

  validation {
    condition     = alltrue([for r in values(var.pool_resources) : can(regex("^pool_[a-z0-9_]+$", r))])
    error_message = "Pool resources are pool_<name> with underscores (Kubernetes forbids ':' in KubeRay resource keys)."
  }
}

variable "node_pool_capacity" {
  type        = number
  description = "Amount of its pool resource each Ray node declares (fnplatform.pools.NODE_POOL_CAPACITY). Must be a whole number: Ray's autoscaler rejects non-integer custom resources."

  validation {
    condition     = var.node_pool_capacity >= 1 && floor(var.node_pool_capacity) == var.node_pool_capacity
    error_message = "node_pool_capacity must be a positive whole number."
  }
}

variable "idle_timeout_seconds" {
  type        = number
  description = "How long a Ray worker stays idle before Ray's autoscaler removes it (then Karpenter removes the empty node)."
  default     = 120

  validation {
    condition     = var.idle_timeout_seconds >= 30
    error_message = "idle_timeout_seconds must be at least 30."
  }
}

variable "head" {
  type = object({
    cpu    = string
    memory = string
    shm    = string
  })
  description = "Resources of the Ray head pod (api pool): GCS, Serve controller and proxy, and pool_api replicas. shm is the /dev/shm size for the object store and counts against memory."
  default     = { cpu = "3", memory = "12Gi", shm = "3Gi" }

  validation {
    condition     = can(regex("^[0-9]+$", var.head.cpu)) && can(regex("^[0-9]+Gi$", var.head.memory)) && can(regex("^[0-9]+Gi$", var.head.shm))
    error_message = "head.cpu must be whole CPUs; head.memory and head.shm in Gi."
  }
}

variable "worker_groups" {
  type = object({
    api = object({
      cpu         = string
      memory      = string
      shm         = string
      max_workers = number
    })
    cpu = object({
      cpu         = string
      memory      = string
      shm         = string
      max_workers = number
    })
    gpu = object({
      cpu         = string
      memory      = string
      shm         = string
      gpus        = number
      max_workers = number
    })
  })
  description = "Per-pod resources and maximum size of the Ray worker groups; every group starts at and can return to zero. Size pods to fill one node of the pool (whole CPUs and Gi, GPUs per pod)."
  default = {
    api = { cpu = "3", memory = "12Gi", shm = "3Gi", max_workers = 4 }
    cpu = { cpu = "7", memory = "28Gi", shm = "8Gi", max_workers = 32 }
    gpu = { cpu = "7", memory = "28Gi", shm = "8Gi", gpus = 1, max_workers = 8 }
  }

  validation {
    condition = alltrue([
      for g in [var.worker_groups.api, var.worker_groups.cpu, var.worker_groups.gpu] :
      can(regex("^[0-9]+$", g.cpu)) && can(regex("^[0-9]+Gi$", g.memory)) && can(regex("^[0-9]+Gi$", g.shm)) && g.max_workers >= 1
    ])
    error_message = "Worker cpu must be whole CPUs, memory and shm in Gi, max_workers at least 1."
  }

  validation {
    condition     = var.worker_groups.gpu.gpus >= 1 && floor(var.worker_groups.gpu.gpus) == var.worker_groups.gpu.gpus
    error_message = "worker_groups.gpu.gpus must be a positive whole number."
  }
}

variable "bundles_bucket_name" {
  type        = string
  description = "Bundles bucket (FN_S3_BUCKET)."
}

variable "bundles_bucket_arn" {
  type        = string
  description = "ARN of the bundles bucket; Ray pods may read it, the control plane may also write it."
}

variable "bundles_kms_key_arn" {
  type        = string
  description = "KMS key of the bundles bucket."
}

variable "ray_write_prefixes" {
  type        = list(string)
  description = "Key prefixes of the bundles bucket the Ray pods may write besides blobs/ (flow inputs and step results, always writable). Empty: blobs/ only."
  default     = []

  validation {
    condition     = alltrue([for p in var.ray_write_prefixes : can(regex("^[a-z0-9][a-z0-9_./-]*/$", p)) && !startswith(p, "bundles/")])
    error_message = "Prefixes must end with / and must not be bundles/ (bundles are written by the control plane only)."
  }
}

variable "database_url" {
  type        = string
  description = "FN_DATABASE_URL (the registry's SQLAlchemy URL, password included). Stored in the Kubernetes Secret fn-database-url, read by the control plane and the api-pool Ray pods."
  sensitive   = true

  validation {
    condition     = can(regex("^postgresql\\+psycopg://", var.database_url))
    error_message = "database_url must be a postgresql+psycopg:// URL (modules/registry output database_url)."
  }
}

variable "tls_certificate_arn" {
  type        = string
  description = "ACM certificate ARN for TLS on both internal NLBs (Serve and the control-plane API): each then listens on 443 with TLS only, and has no plaintext listener. Its names must be the DNS names clients use (CNAMEs to the NLBs). Empty: plain HTTP on 8000 and the control-plane port."
  default     = ""

  validation {
    condition     = var.tls_certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.tls_certificate_arn))
    error_message = "tls_certificate_arn must be empty or an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)."
  }
}

variable "control_plane" {
  type = object({
    replicas = number
    port     = number
    args     = list(string)
    cpu      = string
    memory   = string
  })
  description = "The fn control plane Deployment in the api pool: fnctl <args> (the API on port; --http-host/--http-port configure Serve's proxy on the Ray cluster, which must listen on 0.0.0.0:8000 for the fn-serve Service). One replica: it is the single writer of the Serve config."
  default = {
    replicas = 1
    port     = 8080
    args     = ["server", "--api-host", "0.0.0.0", "--api-port", "8080", "--http-host", "0.0.0.0", "--http-port", "8000"]
    cpu      = "500m"
    memory   = "1Gi"
  }

  validation {
    condition     = var.control_plane.replicas == 1 && var.control_plane.port > 1024 && var.control_plane.port < 65536 && !contains([6379, 8000, 8265, 10001], var.control_plane.port)
    error_message = "control_plane.replicas must be 1 and port an unprivileged port that is not a Ray port."
  }
}

variable "internal_client_cidrs" {
  type        = list(string)
  description = "CIDRs allowed through the internal load balancers (Serve on 8000 and the control plane API), normally the VPC and peered/VPN ranges. Never 0.0.0.0/0."

  validation {
    condition     = length(var.internal_client_cidrs) >= 1 && !contains(var.internal_client_cidrs, "0.0.0.0/0")
    error_message = "Give at least one CIDR and never 0.0.0.0/0."
  }
}

variable "metrics_scraper" {
  type = object({
    namespace  = string
    pod_labels = map(string)
    key_dir    = string
  })
  description = "An existing Prometheus that scrapes the control plane's GET /metrics: its namespace (empty: no scrape wiring), the labels of its pods (admitted to the control plane's port by a network policy) and the folder where its pods mount the Secret fn-metrics-key (prometheus-operator's spec.secrets mounts it at /etc/prometheus/secrets/fn-metrics-key). The module writes the Secret and the ConfigMap fn-prometheus-scrape into that namespace; mounting them is the Prometheus deployment's part."
  default = {
    namespace  = ""
    pod_labels = { "app.kubernetes.io/name" = "prometheus" }
    key_dir    = "/etc/prometheus/secrets/fn-metrics-key"
  }

  validation {
    condition     = var.metrics_scraper.namespace == "" || can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.metrics_scraper.namespace))
    error_message = "metrics_scraper.namespace must be empty or a Kubernetes namespace name (a DNS label)."
  }

  # Its copy of fn-metrics-key would collide with the control plane's; the scraper's own namespace keeps its
  # pods (and what they may mount) apart from fn's.
  validation {
    condition     = var.metrics_scraper.namespace != var.namespace
    error_message = "metrics_scraper.namespace must be the scraper's own namespace, not the fn namespace."
  }

  # An empty selector would admit every pod of that namespace to the control plane's API.
  validation {
    condition     = length(var.metrics_scraper.pod_labels) > 0
    error_message = "metrics_scraper.pod_labels must name at least one label of the Prometheus pods."
  }

  validation {
    condition     = startswith(var.metrics_scraper.key_dir, "/") && !endswith(var.metrics_scraper.key_dir, "/")
    error_message = "metrics_scraper.key_dir must be an absolute folder path without a trailing slash."
  }
}

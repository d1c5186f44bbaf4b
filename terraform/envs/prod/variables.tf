variable "region" {
  type        = string
  description = "AWS region to deploy into."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "allowed_account_ids" {
  type        = list(string)
  description = "AWS account IDs this configuration may touch; the provider refuses any other (guards against applying prod with the wrong credentials)."

  validation {
    condition     = length(var.allowed_account_ids) >= 1 && alltrue([for a in var.allowed_account_ids : can(regex("^[0-9]{12}$", a))])
    error_message = "Give at least one 12-digit AWS account ID."
  }
}

variable "environment" {
  type        = string
  description = "Environment name; resources are named fn-<environment>."
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.environment))
    error_message = "environment must be 2-12 lowercase letters or digits."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags applied to every AWS resource through the provider's default_tags."
  default     = {}
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones of the VPC subnets (two or three)."
  default     = ["us-east-1a", "us-east-1b", "us-east-1c"]

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR of the VPC."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR."
  }
}

variable "single_nat_gateway" {
  type        = bool
  description = "Use one NAT gateway instead of one per AZ (cheaper, less available)."
  default     = false
}

variable "bundles_bucket_name" {
  type        = string
  description = "Globally unique name of the bundles bucket (FN_S3_BUCKET)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,49}[a-z0-9]$", var.bundles_bucket_name))
    error_message = "bundles_bucket_name must be a valid S3 bucket name of at most 51 characters."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes version."
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.34."
  }
}

variable "cluster_endpoint_public_access" {
  type        = bool
  description = "Expose the Kubernetes API publicly (to cluster_public_access_cidrs only). Off: the API is private to the VPC."
  default     = false
}

variable "cluster_public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to the public Kubernetes API when cluster_endpoint_public_access is true."
  default     = []

  validation {
    condition     = !contains(var.cluster_public_access_cidrs, "0.0.0.0/0")
    error_message = "Never open the Kubernetes API to 0.0.0.0/0."
  }
}

variable "admin_principal_arns" {
  type        = list(string)
  description = "IAM roles or users given cluster-admin through EKS access entries (operators, CI)."
  default     = []

  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "admin_principal_arns must be IAM role or user ARNs."
  }
}

variable "ray_image" {
  type        = string
  description = "Image of the Ray pods and the control plane: rayproject/ray:<ray_version>-py311 plus the fn packages, pinned by tag or digest."
}

variable "ray_version" {
  type        = string
  description = "Ray version inside ray_image."
  default     = "2.60.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.ray_version))
    error_message = "ray_version must be x.y.z."
  }
}

variable "karpenter_chart_version" {
  type        = string
  description = "Pinned Karpenter Helm chart version."
  default     = "1.8.1"

  validation {
    condition     = can(regex("^1\\.[0-9]+\\.[0-9]+$", var.karpenter_chart_version))
    error_message = "karpenter_chart_version must be an exact 1.x.y version."
  }
}

variable "kuberay_chart_version" {
  type        = string
  description = "Pinned kuberay-operator Helm chart version."
  default     = "1.4.2"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.kuberay_chart_version))
    error_message = "kuberay_chart_version must be an exact x.y.z version."
  }
}

variable "lb_controller_chart_version" {
  type        = string
  description = "Pinned aws-load-balancer-controller Helm chart version."
  default     = "1.14.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.lb_controller_chart_version))
    error_message = "lb_controller_chart_version must be an exact x.y.z version."
  }
}

variable "db_instance_class" {
  type        = string
  description = "RDS instance class of the registry database."
  default     = "db.t4g.medium"

  validation {
    condition     = startswith(var.db_instance_class, "db.")
    error_message = "db_instance_class must be an RDS instance class such as db.t4g.medium."
  }
}

variable "db_multi_az" {
  type        = bool
  description = "Run the registry database with a Multi-AZ standby."
  default     = true
}

variable "extra_internal_client_cidrs" {
  type        = list(string)
  description = "CIDRs besides the VPC (VPN, peered networks) allowed through the internal load balancers of Serve and the control plane."
  default     = []

  validation {
    condition     = !contains(var.extra_internal_client_cidrs, "0.0.0.0/0")
    error_message = "The internal load balancers are never open to 0.0.0.0/0."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of CloudWatch log groups (flow logs, EKS control plane, RDS)."
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value of at least 365."
  }
}

variable "tls_certificate_arn" {
  type        = string
  description = "ACM certificate ARN: Serve's and the control plane's internal NLBs then listen on 443 with TLS only (no plaintext listener). The certificate must name the DNS names clients use, pointed (CNAME) at the NLBs. Empty: plain HTTP inside the VPC."
  default     = ""

  validation {
    condition     = var.tls_certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.tls_certificate_arn))
    error_message = "tls_certificate_arn must be empty or an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)."
  }
}

variable "metrics_scraper" {
  type = object({
    namespace  = string
    pod_labels = map(string)
    key_dir    = string
  })
  description = "An existing Prometheus to wire to the control plane's GET /metrics (modules/ray metrics_scraper): its namespace (empty: none), its pods' labels and where they mount the Secret fn-metrics-key."
  default = {
    namespace  = ""
    pod_labels = { "app.kubernetes.io/name" = "prometheus" }
    key_dir    = "/etc/prometheus/secrets/fn-metrics-key"
  }
}

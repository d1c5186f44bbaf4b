variable "name" {
  type        = string
  description = "EKS cluster name (also the prefix of its IAM roles, KMS alias and log group)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name must be 2-39 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "AWS region of the cluster (used in the KMS key policy for CloudWatch Logs)."
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the control plane and the system node group, e.g. 1.34."
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.34."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC the cluster lives in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the control-plane ENIs and the system node group (at least two AZs)."

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "endpoint_public_access" {
  type        = bool
  description = "Expose the Kubernetes API endpoint publicly (restricted to public_access_cidrs). Off by default: the API is reachable only from inside the VPC (VPN, bastion or CI runner in the VPC)."
  default     = false
}

variable "public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the public API endpoint when endpoint_public_access is true. Never 0.0.0.0/0."
  default     = []

  validation {
    condition     = !contains(var.public_access_cidrs, "0.0.0.0/0")
    error_message = "public_access_cidrs must not contain 0.0.0.0/0."
  }
}

variable "admin_principal_arns" {
  type        = list(string)
  description = "IAM principals (roles or users) granted cluster-admin through EKS access entries, in addition to the identity that creates the cluster."
  default     = []
}

variable "system_node_instance_types" {
  type        = list(string)
  description = "Instance types of the always-on system node group (CoreDNS, Karpenter, KubeRay operator, load balancer controller)."
  default     = ["m7i.large", "m6i.large"]
}

variable "system_node_count" {
  type = object({
    min     = number
    desired = number
    max     = number
  })
  description = "Size of the system node group. Two nodes keep Karpenter and CoreDNS available through a node loss."
  default     = { min = 2, desired = 2, max = 3 }

  validation {
    condition     = var.system_node_count.min >= 1 && var.system_node_count.min <= var.system_node_count.desired && var.system_node_count.desired <= var.system_node_count.max
    error_message = "system_node_count must satisfy 1 <= min <= desired <= max."
  }
}

variable "system_node_disk_gib" {
  type        = number
  description = "Root volume size of the system nodes in GiB."
  default     = 50

  validation {
    condition     = var.system_node_disk_gib >= 20
    error_message = "system_node_disk_gib must be at least 20."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Days to keep control-plane logs in CloudWatch Logs."
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Keep control-plane logs at least 365 days."
  }
}

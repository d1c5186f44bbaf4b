variable "cluster_name" {
  type        = string
  description = "EKS cluster name; also the value of the karpenter.sh/discovery tag on the private subnets and the cluster security group."
}

variable "cluster_endpoint" {
  type        = string
  description = "Kubernetes API endpoint, passed to the Karpenter controller."
}

variable "region" {
  type        = string
  description = "AWS region (set as AWS_REGION for the controller: nodes enforce IMDSv2 with hop limit 1, so pods cannot discover it)."
}

variable "chart_version" {
  type        = string
  description = "Pinned version of the Karpenter Helm chart (oci://public.ecr.aws/karpenter/karpenter). Its CRDs must serve karpenter.sh/v1."
  default     = "1.8.1"

  validation {
    condition     = can(regex("^1\\.[0-9]+\\.[0-9]+$", var.chart_version))
    error_message = "chart_version must be an exact 1.x.y version (the v1 NodePool API)."
  }
}

variable "bottlerocket_version" {
  type        = string
  description = "Bottlerocket AMI version for Karpenter nodes (amiSelectorTerms alias bottlerocket@<version>), e.g. v1.40.0. Pin it in production; latest follows new releases, which Karpenter rolls out as drift."
  default     = "latest"

  validation {
    condition     = can(regex("^(latest|v[0-9]+\\.[0-9]+\\.[0-9]+)$", var.bottlerocket_version))
    error_message = "bottlerocket_version must be latest or vX.Y.Z."
  }
}

variable "pools" {
  type = object({
    api = object({
      instance_categories = list(string)
      cpu_limit           = number
      memory_limit_gib    = number
    })
    cpu = object({
      instance_categories = list(string)
      capacity_types      = list(string)
      cpu_limit           = number
      memory_limit_gib    = number
      data_volume_gib     = number
    })
    gpu = object({
      instance_families = list(string)
      capacity_types    = list(string)
      gpu_limit         = number
      cpu_limit         = number
      memory_limit_gib  = number
      data_volume_gib   = number
    })
  })
  description = "Shape and ceilings of the three Karpenter NodePools (api, cpu, gpu); api and cpu share the standard EC2NodeClass and its data volume size (cpu.data_volume_gib). Limits cap the pool's total provisioned capacity; cpu and gpu have no minimum and scale to zero."
  default = {
    api = {
      instance_categories = ["m"]
      cpu_limit           = 32
      memory_limit_gib    = 128
    }
    cpu = {
      instance_categories = ["c", "m", "r"]
      capacity_types      = ["spot", "on-demand"]
      cpu_limit           = 256
      memory_limit_gib    = 1024
      data_volume_gib     = 100
    }
    gpu = {
      instance_families = ["g5", "g6", "g6e"]
      capacity_types    = ["on-demand"]
      gpu_limit         = 8
      cpu_limit         = 128
      memory_limit_gib  = 512
      data_volume_gib   = 200
    }
  }

  validation {
    condition     = alltrue([for t in concat(var.pools.cpu.capacity_types, var.pools.gpu.capacity_types) : contains(["spot", "on-demand"], t)])
    error_message = "capacity_types may only contain spot and on-demand."
  }

  validation {
    condition     = alltrue([for f in var.pools.gpu.instance_families : can(regex("^(g|p)[0-9]+[a-z]*$", f))])
    error_message = "gpu.instance_families must be NVIDIA GPU families such as g5, g6, g6e, p4d, p5."
  }

  validation {
    condition     = var.pools.gpu.gpu_limit >= 1 && floor(var.pools.gpu.gpu_limit) == var.pools.gpu.gpu_limit
    error_message = "gpu.gpu_limit must be a positive whole number."
  }
}

variable "consolidate_after" {
  type        = string
  description = "How long a cpu or gpu node must be empty before Karpenter removes it (the pools scale to zero after Ray releases its workers)."
  default     = "2m"

  validation {
    condition     = can(regex("^[0-9]+(s|m|h)$", var.consolidate_after))
    error_message = "consolidate_after must be a duration such as 30s, 2m or 1h."
  }
}

variable "expire_after" {
  type        = string
  description = "Maximum node lifetime before Karpenter replaces it (picks up patched AMIs)."
  default     = "720h"

  validation {
    condition     = can(regex("^[0-9]+h$", var.expire_after))
    error_message = "expire_after must be a number of hours such as 720h."
  }
}

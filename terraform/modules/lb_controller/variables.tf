variable "cluster_name" {
  type        = string
  description = "EKS cluster name."
}

variable "region" {
  type        = string
  description = "AWS region (passed to the controller: it cannot read IMDS through the hop-limit-1 node metadata endpoint)."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the cluster (passed to the controller for the same reason as region)."
}

variable "cluster_security_group_id" {
  type        = string
  description = "EKS cluster security group shared by all nodes; the controller adds load-balancer-to-pod rules to it."
}

variable "chart_version" {
  type        = string
  description = "Pinned version of the aws-load-balancer-controller Helm chart (https://aws.github.io/eks-charts)."
  default     = "1.14.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.chart_version))
    error_message = "chart_version must be an exact x.y.z version."
  }
}

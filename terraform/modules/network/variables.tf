variable "name" {
  type        = string
  description = "Name prefix for every network resource (e.g. fn-prod)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "AWS region the VPC lives in (used for the S3 gateway endpoint and the flow-log key policy)."
}

variable "cidr_block" {
  type        = string
  description = "IPv4 CIDR of the VPC. Private subnets get /19s, public (NAT-only) subnets /24s carved from it."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 16
    error_message = "cidr_block must be a valid IPv4 CIDR of size /16 or larger."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones to spread subnets over (at least two: EKS requires subnets in two AZs)."

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4
    error_message = "Give between two and four availability zones."
  }
}

variable "cluster_name" {
  type        = string
  description = "EKS cluster name: private subnets are tagged karpenter.sh/discovery=<cluster_name> so Karpenter finds them."
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway for all AZs (cheaper, an AZ outage cuts egress) instead of one per AZ."
  default     = false
}

variable "flow_log_retention_days" {
  type        = number
  description = "Days to keep VPC flow logs in CloudWatch Logs."
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a CloudWatch retention value of at least 365 days."
  }
}

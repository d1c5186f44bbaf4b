variable "name" {
  type        = string
  description = "Identifier prefix of the database and its satellites (e.g. fn-prod)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be 2-41 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "AWS region (used in the KMS key policy for CloudWatch Logs)."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the database security group."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the DB subnet group (at least two AZs). Never public subnets."

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "RDS needs subnets in at least two availability zones."
  }
}

variable "client_security_group_ids" {
  type        = list(string)
  description = "Security groups allowed to connect on the PostgreSQL port (the EKS cluster security group shared by all nodes)."

  validation {
    condition     = length(var.client_security_group_ids) >= 1
    error_message = "Give at least one client security group."
  }
}

variable "engine_version" {
  type        = string
  description = "PostgreSQL major version; minor versions are upgraded automatically in the maintenance window."
  default     = "17"

  validation {
    condition     = can(regex("^[0-9]{2}$", var.engine_version))
    error_message = "engine_version must be a PostgreSQL major version such as 17."
  }
}

variable "instance_class" {
  type        = string
  description = "RDS instance class. The registry is small (functions, versions, keys, flow state)."
  default     = "db.t4g.medium"
}

variable "allocated_storage_gib" {
  type        = number
  description = "Initial storage in GiB (gp3)."
  default     = 20

  validation {
    condition     = var.allocated_storage_gib >= 20
    error_message = "allocated_storage_gib must be at least 20."
  }
}

variable "max_allocated_storage_gib" {
  type        = number
  description = "Ceiling for storage autoscaling in GiB."
  default     = 200
}

variable "multi_az" {
  type        = bool
  description = "Run a synchronous standby in a second AZ."
  default     = true
}

variable "backup_retention_days" {
  type        = number
  description = "Days of automated backups (point-in-time recovery window)."
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "database_name" {
  type        = string
  description = "Name of the registry database."
  default     = "fn"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.database_name))
    error_message = "database_name must be a lowercase PostgreSQL identifier."
  }
}

variable "master_username" {
  type        = string
  description = "Master user of the instance, used by the fn control plane."
  default     = "fn"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,15}$", var.master_username)) && var.master_username != "admin" && var.master_username != "postgres"
    error_message = "master_username must be a short lowercase identifier, not a reserved name."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Days to keep exported PostgreSQL logs in CloudWatch Logs."
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Keep database logs at least 365 days."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the instance. Turn off deliberately, in its own apply, before a destroy."
  default     = true
}

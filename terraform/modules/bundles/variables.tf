variable "bucket_name" {
  type        = string
  description = "Globally unique name of the bundles bucket (function code zips and model artifacts). The access-log bucket is named <bucket_name>-access-logs."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,49}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-51 characters of lowercase letters, digits, dots or dashes (room is left for the -access-logs suffix)."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which an overwritten or deleted bundle version is removed. Bundles are content-addressed, so old versions only exist after deletes."
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  type        = number
  description = "Days after which unfinished multipart uploads (large model artifacts) are aborted and their parts deleted."
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1
    error_message = "abort_incomplete_multipart_days must be at least 1."
  }
}

variable "access_log_retention_days" {
  type        = number
  description = "Days to keep S3 server access logs of the bundles bucket."
  default     = 365

  validation {
    condition     = var.access_log_retention_days >= 90
    error_message = "Keep access logs for at least 90 days."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Allow terraform destroy to delete non-empty buckets. Keep false in production."
  default     = false
}

output "bucket_name" {
  description = "Name of the bundles bucket (FN_S3_BUCKET for the platform)."
  value       = aws_s3_bucket.bundles.id
}

output "bucket_arn" {
  description = "ARN of the bundles bucket."
  value       = aws_s3_bucket.bundles.arn
}

output "kms_key_arn" {
  description = "ARN of the customer-managed KMS key encrypting the bundles bucket."
  value       = aws_kms_key.bundles.arn
}

output "log_bucket_name" {
  description = "Name of the bucket receiving the bundles bucket's server access logs."
  value       = aws_s3_bucket.logs.id
}

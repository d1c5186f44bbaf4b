output "database_url_secret_arn" {
  description = "ARN of the Secrets Manager secret whose value is FN_DATABASE_URL (postgresql+psycopg://..., sslmode=require)."
  value       = aws_secretsmanager_secret.database_url.arn
}

output "database_url" {
  description = "FN_DATABASE_URL itself (postgresql+psycopg://..., sslmode=require), for the Kubernetes Secret modules/ray creates. Sensitive."
  value       = local.database_url
  sensitive   = true
}

output "kms_key_arn" {
  description = "KMS key encrypting the database, its Performance Insights data, logs and the connection secret (readers of the secret need kms:Decrypt on it)."
  value       = aws_kms_key.registry.arn
}

output "address" {
  description = "DNS name of the database (private)."
  value       = aws_db_instance.registry.address
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.registry.port
}

output "security_group_id" {
  description = "Security group of the database."
  value       = aws_security_group.registry.id
}

# The registry database (fnplatform.storage.registry on PostgreSQL): RDS in private subnets only,
# KMS-encrypted storage, Performance Insights, logs and connection secret; TLS enforced;
# reachable only from the EKS cluster security group.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition    = data.aws_partition.current.partition
  account_root = "arn:${local.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  identifier   = "${var.name}-registry"
  log_exports  = ["postgresql", "upgrade"]
  port         = 5432
}

resource "aws_kms_key" "registry" {
  description             = "${local.identifier}: RDS storage, Performance Insights, logs and connection secret"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = local.account_root }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsUse"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/aws/rds/instance/${local.identifier}/*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "registry" {
  name          = "alias/${local.identifier}"
  target_key_id = aws_kms_key.registry.key_id
}

# --- network ------------------------------------------------------------------------------------

resource "aws_db_subnet_group" "registry" {
  name_prefix = "${local.identifier}-"
  description = "Private subnets of the fn registry database"
  subnet_ids  = var.subnet_ids
}

resource "aws_security_group" "registry" {
  name_prefix = "${local.identifier}-"
  description = "fn registry PostgreSQL: ingress from the EKS cluster only, no egress"
  vpc_id      = var.vpc_id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "registry" {
  for_each = toset(var.client_security_group_ids)

  security_group_id            = aws_security_group.registry.id
  description                  = "PostgreSQL from EKS nodes and pods"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

# --- parameters: TLS only, statement logging ---------------------------------------------------

resource "aws_db_parameter_group" "registry" {
  name_prefix = "${local.identifier}-"
  family      = "postgres${var.engine_version}"
  description = "fn registry: TLS required, DDL and slow statements logged"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

# --- logs and monitoring ------------------------------------------------------------------------

# Created ahead of RDS so exported logs are KMS-encrypted and expire.
resource "aws_cloudwatch_log_group" "registry" {
  for_each = toset(local.log_exports)

  name              = "/aws/rds/instance/${local.identifier}/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.registry.arn
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name_prefix        = "${local.identifier}-monitoring-"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# --- instance ----------------------------------------------------------------------------------------

# URL-safe (letters and digits only) so it can sit in the connection URL unescaped.
resource "random_password" "master" {
  length  = 40
  special = false
}

resource "aws_db_instance" "registry" {
  identifier     = local.identifier
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class
  db_name        = var.database_name
  port           = local.port

  username = var.master_username
  password = random_password.master.result

  iam_database_authentication_enabled = true

  allocated_storage     = var.allocated_storage_gib
  max_allocated_storage = var.max_allocated_storage_gib
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.registry.arn

  db_subnet_group_name   = aws_db_subnet_group.registry.name
  vpc_security_group_ids = [aws_security_group.registry.id]
  publicly_accessible    = false
  multi_az               = var.multi_az
  parameter_group_name   = aws_db_parameter_group.registry.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  backup_retention_period   = var.backup_retention_days
  backup_window             = "03:00-04:00"
  maintenance_window        = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot     = true
  delete_automated_backups  = false
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.identifier}-final"

  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false
  apply_immediately           = false

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.registry.arn
  performance_insights_retention_period = 7

  monitoring_interval = 60
  monitoring_role_arn = aws_iam_role.monitoring.arn

  enabled_cloudwatch_logs_exports = local.log_exports

  depends_on = [
    aws_cloudwatch_log_group.registry,
    aws_iam_role_policy_attachment.monitoring,
  ]
}

# --- connection secret ------------------------------------------------------------------------------

resource "aws_secretsmanager_secret" "database_url" {
  name_prefix             = "${var.name}/registry/database-url-"
  description             = "FN_DATABASE_URL of the fn control plane (SQLAlchemy URL, TLS required)"
  kms_key_id              = aws_kms_key.registry.arn
  recovery_window_in_days = 30
}

locals {
  # Also handed to modules/ray (output database_url), which puts it in the Kubernetes Secret the control
  # plane and the api-pool Ray pods read FN_DATABASE_URL from.
  database_url = format(
    "postgresql+psycopg://%s:%s@%s:%d/%s?sslmode=require",
    var.master_username,
    random_password.master.result,
    aws_db_instance.registry.address,
    aws_db_instance.registry.port,
    var.database_name,
  )
}

resource "aws_secretsmanager_secret_version" "database_url" {
  secret_id     = aws_secretsmanager_secret.database_url.id
  secret_string = local.database_url
}

# Production deployment of fn on AWS: network, bundles bucket, EKS, Karpenter pools,
# load balancer controller, registry database and the KubeRay cluster with the control plane.
#
# Apply in two steps (the Kubernetes providers need a cluster to talk to):
#   terraform apply -target=module.network -target=module.bundles -target=module.eks -target=module.registry
#   terraform apply

locals {
  name = "fn-${var.environment}"

  # The platform's pool names and Ray resources. Must equal fnplatform.pools:
  # pool_resource(pool) for each of DEFAULT_POOLS, and NODE_POOL_CAPACITY.
  # terraform/tests/ imports those constants and fails if these drift.
  pool_resources = {
    api = "pool_api"
    cpu = "pool_cpu"
    gpu = "pool_gpu"
  }
  node_pool_capacity = 1000
}

module "network" {
  source = "../../modules/network"

  name                    = local.name
  region                  = var.region
  cidr_block              = var.vpc_cidr
  availability_zones      = var.availability_zones
  cluster_name            = local.name
  single_nat_gateway      = var.single_nat_gateway
  flow_log_retention_days = var.log_retention_days
}

module "bundles" {
  source = "../../modules/bundles"

  bucket_name = var.bundles_bucket_name
}

module "eks" {
  source = "../../modules/eks"

  name                   = local.name
  region                 = var.region
  kubernetes_version     = var.kubernetes_version
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  endpoint_public_access = var.cluster_endpoint_public_access
  public_access_cidrs    = var.cluster_public_access_cidrs
  admin_principal_arns   = var.admin_principal_arns
  log_retention_days     = var.log_retention_days
}

module "registry" {
  source = "../../modules/registry"

  name                      = local.name
  region                    = var.region
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  instance_class            = var.db_instance_class
  multi_az                  = var.db_multi_az
  log_retention_days        = var.log_retention_days
}

module "karpenter" {
  source = "../../modules/karpenter"

  cluster_name     = module.eks.cluster_name
  cluster_endpoint = module.eks.cluster_endpoint
  region           = var.region
  chart_version    = var.karpenter_chart_version

  depends_on = [module.eks]
}

module "lb_controller" {
  source = "../../modules/lb_controller"

  cluster_name              = module.eks.cluster_name
  region                    = var.region
  vpc_id                    = module.network.vpc_id
  cluster_security_group_id = module.eks.cluster_security_group_id
  chart_version             = var.lb_controller_chart_version

  depends_on = [module.eks]
}

module "ray" {
  source = "../../modules/ray"

  eks_cluster_name      = module.eks.cluster_name
  region                = var.region
  ray_image             = var.ray_image
  ray_version           = var.ray_version
  kuberay_chart_version = var.kuberay_chart_version

  pool_resources     = local.pool_resources
  node_pool_capacity = local.node_pool_capacity

  bundles_bucket_name = module.bundles.bucket_name
  bundles_bucket_arn  = module.bundles.bucket_arn
  bundles_kms_key_arn = module.bundles.kms_key_arn

  database_url = module.registry.database_url

  internal_client_cidrs = concat([module.network.vpc_cidr_block], var.extra_internal_client_cidrs)
  tls_certificate_arn   = var.tls_certificate_arn

  metrics_scraper = var.metrics_scraper

  depends_on = [module.karpenter, module.lb_controller]
}

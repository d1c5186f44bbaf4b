output "bundles_bucket_name" {
  description = "Bundles bucket: FN_S3_BUCKET of the control plane and the Ray pods."
  value       = module.bundles.bucket_name
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name <cluster_name>)."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.eks.cluster_endpoint
}

output "serve_internal_endpoint" {
  description = "Ray Serve HTTP ingress through the internal NLB (POST /<function>), reachable from the VPC and extra_internal_client_cidrs."
  value       = module.ray.serve_endpoint
}

output "control_plane_endpoint" {
  description = "fn control plane API through the internal NLB: export FN_API_URL=<this>."
  value       = module.ray.control_plane_endpoint
}

output "database_url_secret_arn" {
  description = "Secrets Manager secret holding FN_DATABASE_URL (the record for operators and tools; the pods read the Kubernetes Secret fn-database-url)."
  value       = module.registry.database_url_secret_arn
}

output "ray_address" {
  description = "FN_RAY_ADDRESS used by the control plane inside the cluster."
  value       = module.ray.ray_address
}

output "ray_namespace" {
  description = "Kubernetes namespace of the RayCluster and the control plane."
  value       = module.ray.namespace
}

output "metrics_key_secret" {
  description = "Kubernetes Secret in ray_namespace (and in metrics_scraper.namespace when set) whose api_key is the Prometheus scraper's API key (role invoke, no scope)."
  value       = module.ray.metrics_key_secret
}

output "admin_key_secret" {
  description = "Kubernetes Secret in ray_namespace whose api_key is the bootstrap admin API key: kubectl -n <ray_namespace> get secret <this> -o jsonpath='{.data.api_key}' | base64 -d"
  value       = module.ray.admin_key_secret
}

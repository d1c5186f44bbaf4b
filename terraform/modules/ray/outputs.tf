output "serve_endpoint" {
  description = "Internal URL of Ray Serve's HTTP ingress (POST /<function>), through the internal NLB: http on 8000, or https on 443 with tls_certificate_arn (then use your DNS name for the NLB, the one the certificate names)."
  value       = "${local.lb_scheme}://${kubernetes_service_v1.serve.status[0].load_balancer[0].ingress[0].hostname}:${local.serve_lb_port}"
}

output "control_plane_endpoint" {
  description = "Internal URL of the fn control plane API: the FN_API_URL users give fnctl (https on 443 with tls_certificate_arn; then use your DNS name for the NLB)."
  value       = "${local.lb_scheme}://${kubernetes_service_v1.control_plane.status[0].load_balancer[0].ingress[0].hostname}:${local.control_plane_lb_port}"
}

output "ray_address" {
  description = "In-cluster Ray client address of the head (FN_RAY_ADDRESS of the control plane)."
  value       = local.ray_address
}

output "namespace" {
  description = "Namespace of the RayCluster and the control plane."
  value       = kubernetes_namespace_v1.fn.metadata[0].name
}

output "raycluster_name" {
  description = "Name of the RayCluster."
  value       = var.name
}

output "ray_role_arn" {
  description = "IAM role of the Ray pods (reads the bundles bucket, writes only flow blobs under blobs/)."
  value       = aws_iam_role.ray.arn
}

output "control_plane_role_arn" {
  description = "IAM role of the control plane (read/write on the bundles bucket)."
  value       = aws_iam_role.control_plane.arn
}

output "admin_key_secret" {
  description = "Kubernetes Secret (namespace fn) whose api_key is the bootstrap admin API key (FN_ADMIN_KEY of the control plane)."
  value       = kubernetes_secret_v1.admin_key.metadata[0].name
}

output "metrics_key_secret" {
  description = "Kubernetes Secret (namespace fn, and metrics_scraper.namespace when set) whose api_key is the scraper's API key (FN_METRICS_KEY of the control plane: role invoke, no scope)."
  value       = kubernetes_secret_v1.metrics_key.metadata[0].name
}

output "prometheus_scrape_config_map" {
  description = "ConfigMap in metrics_scraper.namespace with fn.yaml, the fn scrape job (a scrape_config_files file); empty without metrics_scraper."
  value       = local.metrics_scrape ? kubernetes_config_map_v1.prometheus_scrape[0].metadata[0].name : ""
}

output "serve_endpoint" {
  description = "Internal URL of Ray Serve's HTTP ingress (POST /<function>), through the internal NLB."
  value       = "http://${kubernetes_service_v1.serve.status[0].load_balancer[0].ingress[0].hostname}:8000"
}

output "control_plane_endpoint" {
  description = "Internal URL of the fn control plane API: the FN_API_URL users give fnctl."
  value       = "http://${kubernetes_service_v1.control_plane.status[0].load_balancer[0].ingress[0].hostname}:${var.control_plane.port}"
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
  description = "IAM role of the Ray pods (read-only on the bundles bucket)."
  value       = aws_iam_role.ray.arn
}

output "control_plane_role_arn" {
  description = "IAM role of the control plane (read/write on the bundles bucket, reads the database URL secret)."
  value       = aws_iam_role.control_plane.arn
}

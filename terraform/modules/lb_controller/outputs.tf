output "role_arn" {
  description = "IAM role the load balancer controller assumes through pod identity."
  value       = aws_iam_role.controller.arn
}

output "ready" {
  description = "Depend on this before creating Services of type LoadBalancer (the controller's webhook must be up)."
  value       = helm_release.controller.id
}

output "node_pool_names" {
  description = "Names of the Karpenter NodePools; Ray groups select them with the karpenter.sh/nodepool label."
  value       = keys(local.node_pools)
}

output "node_role_arn" {
  description = "IAM role of Karpenter-launched nodes."
  value       = aws_iam_role.node.arn
}

output "controller_role_arn" {
  description = "IAM role the Karpenter controller assumes through pod identity."
  value       = aws_iam_role.controller.arn
}

output "interruption_queue_name" {
  description = "SQS queue receiving spot interruption, rebalance, state-change and health events."
  value       = aws_sqs_queue.interruption.name
}

output "ready" {
  description = "Depend on this to order work after the NodePools exist."
  value       = [for m in kubectl_manifest.node_pool : m.id]
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (private unless endpoint_public_access is true)."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA certificate of the Kubernetes API."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_version" {
  description = "Kubernetes version of the control plane."
  value       = aws_eks_cluster.this.version
}

output "cluster_security_group_id" {
  description = "EKS-created cluster security group shared by the control plane and every node (system and Karpenter)."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "kms_key_arn" {
  description = "KMS key encrypting Kubernetes secrets and control-plane logs."
  value       = aws_kms_key.eks.arn
}

output "system_node_group_name" {
  description = "Name of the system managed node group."
  value       = aws_eks_node_group.system.node_group_name
}

output "addons_ready" {
  description = "IDs of the managed add-ons; depend on this before installing charts that need CoreDNS or pod identity."
  value       = [for a in merge(aws_eks_addon.networking, aws_eks_addon.workloads) : a.id]
}

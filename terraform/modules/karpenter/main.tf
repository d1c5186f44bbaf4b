# Karpenter: controller IAM (pod identity), node IAM role + access entry, the spot
# interruption queue, the Helm chart, and the api/cpu/gpu NodePools with their EC2NodeClasses.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  namespace  = "kube-system"
  sa_name    = "karpenter"
  ec2_arn    = "arn:${local.partition}:ec2:${var.region}"
  owned_tag  = "aws:RequestTag/kubernetes.io/cluster/${var.cluster_name}"
  owned_res  = "aws:ResourceTag/kubernetes.io/cluster/${var.cluster_name}"
}

# --- node role (what Karpenter-launched instances run as) -----------------------------------

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${var.cluster_name}-karpenter-node-"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonSSMManagedInstanceCore",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_iam_instance_profile" "node" {
  name_prefix = "${var.cluster_name}-karpenter-node-"
  role        = aws_iam_role.node.name
}

# Lets instances running as the node role join the cluster.
resource "aws_eks_access_entry" "node" {
  cluster_name  = var.cluster_name
  principal_arn = aws_iam_role.node.arn
  type          = "EC2_LINUX"
}

# --- interruption queue ----------------------------------------------------------------------

resource "aws_sqs_queue" "interruption" {
  name                      = "${var.cluster_name}-karpenter"
  message_retention_seconds = 300
  sqs_managed_sse_enabled   = true
}

data "aws_iam_policy_document" "interruption_queue" {
  statement {
    sid       = "EventBridgeAndSqsDelivery"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.interruption.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "sqs.amazonaws.com"]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.interruption.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "interruption" {
  queue_url = aws_sqs_queue.interruption.url
  policy    = data.aws_iam_policy_document.interruption_queue.json
}

locals {
  interruption_events = {
    health    = { source = ["aws.health"], detail-type = ["AWS Health Event"] }
    spot      = { source = ["aws.ec2"], detail-type = ["EC2 Spot Instance Interruption Warning"] }
    rebalance = { source = ["aws.ec2"], detail-type = ["EC2 Instance Rebalance Recommendation"] }
    state     = { source = ["aws.ec2"], detail-type = ["EC2 Instance State-change Notification"] }
  }
}

resource "aws_cloudwatch_event_rule" "interruption" {
  for_each = local.interruption_events

  name_prefix   = "${var.cluster_name}-karpenter-${each.key}-"
  description   = "Karpenter interruption handling (${each.key}) for ${var.cluster_name}"
  event_pattern = jsonencode(each.value)
}

resource "aws_cloudwatch_event_target" "interruption" {
  for_each = local.interruption_events

  rule      = aws_cloudwatch_event_rule.interruption[each.key].name
  target_id = "KarpenterInterruptionQueue"
  arn       = aws_sqs_queue.interruption.arn
}

# --- controller role (pod identity) -----------------------------------------------------------

data "aws_iam_policy_document" "controller_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks-cluster-name"
      values   = [var.cluster_name]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [local.namespace]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [local.sa_name]
    }
  }
}

resource "aws_iam_role" "controller" {
  name_prefix        = "${var.cluster_name}-karpenter-"
  assume_role_policy = data.aws_iam_policy_document.controller_assume.json
}

# Scoped like Karpenter's reference controller policy: launches and deletions only touch
# resources tagged as owned by this cluster and a NodePool; instance profiles are pre-created
# here (EC2NodeClass.spec.instanceProfile), so no IAM write permissions are needed.
data "aws_iam_policy_document" "controller" {
  statement {
    sid     = "LaunchFromSharedResources"
    actions = ["ec2:RunInstances", "ec2:CreateFleet"]
    resources = [
      "${local.ec2_arn}::image/*",
      "${local.ec2_arn}::snapshot/*",
      "${local.ec2_arn}:*:security-group/*",
      "${local.ec2_arn}:*:subnet/*",
      "${local.ec2_arn}:*:capacity-reservation/*",
    ]
  }

  statement {
    sid       = "LaunchWithOwnedLaunchTemplates"
    actions   = ["ec2:RunInstances", "ec2:CreateFleet"]
    resources = ["${local.ec2_arn}:*:launch-template/*"]
    condition {
      test     = "StringEquals"
      variable = local.owned_res
      values   = ["owned"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:ResourceTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
  }

  statement {
    sid     = "CreateOwnedResources"
    actions = ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"]
    resources = [
      "${local.ec2_arn}:*:fleet/*",
      "${local.ec2_arn}:*:instance/*",
      "${local.ec2_arn}:*:volume/*",
      "${local.ec2_arn}:*:network-interface/*",
      "${local.ec2_arn}:*:launch-template/*",
      "${local.ec2_arn}:*:spot-instances-request/*",
    ]
    condition {
      test     = "StringEquals"
      variable = local.owned_tag
      values   = ["owned"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:RequestTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
  }

  statement {
    sid     = "TagOnCreate"
    actions = ["ec2:CreateTags"]
    resources = [
      "${local.ec2_arn}:*:fleet/*",
      "${local.ec2_arn}:*:instance/*",
      "${local.ec2_arn}:*:volume/*",
      "${local.ec2_arn}:*:network-interface/*",
      "${local.ec2_arn}:*:launch-template/*",
      "${local.ec2_arn}:*:spot-instances-request/*",
    ]
    condition {
      test     = "StringEquals"
      variable = local.owned_tag
      values   = ["owned"]
    }
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:RequestTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
  }

  statement {
    sid       = "TagOwnedInstances"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2_arn}:*:instance/*"]
    condition {
      test     = "StringEquals"
      variable = local.owned_res
      values   = ["owned"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:ResourceTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
    }
  }

  statement {
    sid     = "DeleteOwnedResources"
    actions = ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"]
    resources = [
      "${local.ec2_arn}:*:instance/*",
      "${local.ec2_arn}:*:launch-template/*",
    ]
    condition {
      test     = "StringEquals"
      variable = local.owned_res
      values   = ["owned"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:ResourceTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
  }

  statement {
    sid = "RegionalReadOnly"
    actions = [
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeCapacityReservations",
      "ec2:DescribeImages",
      "ec2:DescribeInstances",
      "ec2:DescribeInstanceTypeOfferings",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplates",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSpotPriceHistory",
      "ec2:DescribeSubnets",
    ]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [var.region]
    }
  }

  statement {
    sid       = "PublicAmiParameters"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:${var.region}::parameter/aws/service/*"]
  }

  statement {
    sid       = "Pricing"
    actions   = ["pricing:GetProducts"]
    resources = ["*"]
  }

  statement {
    sid       = "InterruptionQueue"
    actions   = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
    resources = [aws_sqs_queue.interruption.arn]
  }

  statement {
    sid       = "PassNodeRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.node.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadNodeInstanceProfile"
    actions   = ["iam:GetInstanceProfile"]
    resources = [aws_iam_instance_profile.node.arn]
  }

  statement {
    sid       = "DiscoverApiServer"
    actions   = ["eks:DescribeCluster"]
    resources = ["arn:${local.partition}:eks:${var.region}:${local.account_id}:cluster/${var.cluster_name}"]
  }
}

resource "aws_iam_role_policy" "controller" {
  name   = "karpenter-controller"
  role   = aws_iam_role.controller.id
  policy = data.aws_iam_policy_document.controller.json
}

resource "aws_eks_pod_identity_association" "controller" {
  cluster_name    = var.cluster_name
  namespace       = local.namespace
  service_account = local.sa_name
  role_arn        = aws_iam_role.controller.arn
}

# --- controller --------------------------------------------------------------------------------

resource "helm_release" "karpenter" {
  name       = "karpenter"
  namespace  = local.namespace
  repository = "oci://public.ecr.aws/karpenter"
  chart      = "karpenter"
  version    = var.chart_version
  wait       = true
  timeout    = 600

  values = [yamlencode({
    replicas = 2
    serviceAccount = {
      create = true
      name   = local.sa_name
    }
    settings = {
      clusterName       = var.cluster_name
      clusterEndpoint   = var.cluster_endpoint
      interruptionQueue = aws_sqs_queue.interruption.name
    }
    # Runs on the tainted system node group, never on nodes it manages.
    nodeSelector = { "fn.platform/role" = "system" }
    tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    controller = {
      env = [{ name = "AWS_REGION", value = var.region }]
      resources = {
        requests = { cpu = "250m", memory = "512Mi" }
        limits   = { memory = "512Mi" }
      }
    }
  })]

  depends_on = [
    aws_eks_pod_identity_association.controller,
    aws_iam_role_policy.controller,
    aws_eks_access_entry.node,
  ]
}

# --- node classes and pools -----------------------------------------------------------------------

locals {
  node_classes = {
    standard = templatefile("${path.module}/ec2nodeclass.yaml.tftpl", {
      node_class           = "standard"
      cluster_name         = var.cluster_name
      instance_profile     = aws_iam_instance_profile.node.name
      bottlerocket_version = var.bottlerocket_version
      data_volume_gib      = var.pools.cpu.data_volume_gib
    })
    gpu = templatefile("${path.module}/ec2nodeclass.yaml.tftpl", {
      node_class           = "gpu"
      cluster_name         = var.cluster_name
      instance_profile     = aws_iam_instance_profile.node.name
      bottlerocket_version = var.bottlerocket_version
      data_volume_gib      = var.pools.gpu.data_volume_gib
    })
  }

  node_pools = {
    api = templatefile("${path.module}/nodepool-api.yaml.tftpl", {
      node_class          = "standard"
      expire_after        = var.expire_after
      instance_categories = jsonencode(var.pools.api.instance_categories)
      cpu_limit           = var.pools.api.cpu_limit
      memory_limit_gib    = var.pools.api.memory_limit_gib
    })
    cpu = templatefile("${path.module}/nodepool-cpu.yaml.tftpl", {
      node_class          = "standard"
      expire_after        = var.expire_after
      consolidate_after   = var.consolidate_after
      capacity_types      = jsonencode(var.pools.cpu.capacity_types)
      instance_categories = jsonencode(var.pools.cpu.instance_categories)
      cpu_limit           = var.pools.cpu.cpu_limit
      memory_limit_gib    = var.pools.cpu.memory_limit_gib
    })
    gpu = templatefile("${path.module}/nodepool-gpu.yaml.tftpl", {
      node_class        = "gpu"
      expire_after      = var.expire_after
      consolidate_after = var.consolidate_after
      capacity_types    = jsonencode(var.pools.gpu.capacity_types)
      instance_families = jsonencode(var.pools.gpu.instance_families)
      cpu_limit         = var.pools.gpu.cpu_limit
      memory_limit_gib  = var.pools.gpu.memory_limit_gib
      gpu_limit         = var.pools.gpu.gpu_limit
    })
  }
}

# kubectl_manifest (not kubernetes_manifest) because the CRDs come from the chart in the same
# apply: kubernetes_manifest needs them to exist at plan time.
resource "kubectl_manifest" "node_class" {
  for_each = local.node_classes

  yaml_body         = each.value
  server_side_apply = true
  wait              = true

  depends_on = [helm_release.karpenter]
}

resource "kubectl_manifest" "node_pool" {
  for_each = local.node_pools

  yaml_body         = each.value
  server_side_apply = true

  depends_on = [kubectl_manifest.node_class]
}

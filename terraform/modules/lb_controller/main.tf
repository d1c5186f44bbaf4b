# AWS Load Balancer Controller: turns the fn Services of type LoadBalancer into internal NLBs
# (scheme internal, IP targets). Its IAM policy is written here for NLB Services only (no
# Ingress/ALB, WAF, Shield or ACM), with every mutating action limited to resources the
# controller tagged elbv2.k8s.aws/cluster, or to the cluster security group.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition   = data.aws_partition.current.partition
  account_id  = data.aws_caller_identity.current.account_id
  namespace   = "kube-system"
  sa_name     = "aws-load-balancer-controller"
  elb_arn     = "arn:${local.partition}:elasticloadbalancing:${var.region}:${local.account_id}"
  ec2_arn     = "arn:${local.partition}:ec2:${var.region}:${local.account_id}"
  cluster_tag = "elbv2.k8s.aws/cluster"
  elb_resources = [
    "${local.elb_arn}:loadbalancer/net/*/*",
    "${local.elb_arn}:targetgroup/*/*",
  ]
  listener_resources = [
    "${local.elb_arn}:listener/net/*/*/*",
  ]
}

data "aws_iam_policy_document" "assume" {
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
  name_prefix        = "${var.cluster_name}-lbc-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "controller" {
  statement {
    sid       = "ServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/elasticloadbalancing.amazonaws.com/*"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["elasticloadbalancing.amazonaws.com"]
    }
  }

  statement {
    sid = "Discovery"
    actions = [
      "ec2:DescribeAccountAttributes",
      "ec2:DescribeAddresses",
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInstances",
      "ec2:DescribeInternetGateways",
      "ec2:DescribeIpamPools",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeRouteTables",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeTags",
      "ec2:DescribeVpcPeeringConnections",
      "ec2:DescribeVpcs",
      "elasticloadbalancing:DescribeCapacityReservation",
      "elasticloadbalancing:DescribeListenerAttributes",
      "elasticloadbalancing:DescribeListenerCertificates",
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeLoadBalancerAttributes",
      "elasticloadbalancing:DescribeLoadBalancers",
      "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeSSLPolicies",
      "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:DescribeTargetGroupAttributes",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetHealth",
      "elasticloadbalancing:DescribeTrustStores",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "VpcSecurityGroups"
    actions   = ["ec2:GetSecurityGroupsForVpc"]
    resources = ["${local.ec2_arn}:vpc/${var.vpc_id}"]
  }

  # Security groups the controller creates for its NLBs (frontend) ...
  statement {
    sid     = "CreateLoadBalancerSecurityGroups"
    actions = ["ec2:CreateSecurityGroup"]
    resources = [
      "${local.ec2_arn}:security-group/*",
      "${local.ec2_arn}:vpc/${var.vpc_id}",
    ]
  }

  statement {
    sid       = "TagNewSecurityGroups"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2_arn}:security-group/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["CreateSecurityGroup"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "ManageOwnSecurityGroups"
    actions   = ["ec2:CreateTags", "ec2:DeleteTags", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"]
    resources = ["${local.ec2_arn}:security-group/*"]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  # ... and the node-side rules letting the NLB reach pod IPs.
  statement {
    sid       = "BackendRulesOnClusterSecurityGroup"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
    resources = ["${local.ec2_arn}:security-group/${var.cluster_security_group_id}"]
  }

  statement {
    sid       = "CreateTaggedLoadBalancers"
    actions   = ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"]
    resources = local.elb_resources
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "TagOnCreate"
    actions   = ["elasticloadbalancing:AddTags"]
    resources = local.elb_resources
    condition {
      test     = "StringEquals"
      variable = "elasticloadbalancing:CreateAction"
      values   = ["CreateTargetGroup", "CreateLoadBalancer"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid = "ManageOwnLoadBalancers"
    actions = [
      "elasticloadbalancing:AddTags",
      "elasticloadbalancing:RemoveTags",
      "elasticloadbalancing:ModifyLoadBalancerAttributes",
      "elasticloadbalancing:SetIpAddressType",
      "elasticloadbalancing:SetSecurityGroups",
      "elasticloadbalancing:SetSubnets",
      "elasticloadbalancing:DeleteLoadBalancer",
      "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes",
      "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:RegisterTargets",
      "elasticloadbalancing:DeregisterTargets",
      "elasticloadbalancing:CreateListener",
    ]
    resources = local.elb_resources
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid = "ManageListeners"
    actions = [
      "elasticloadbalancing:AddTags",
      "elasticloadbalancing:DeleteListener",
      "elasticloadbalancing:ModifyListener",
      "elasticloadbalancing:ModifyListenerAttributes",
    ]
    resources = local.listener_resources
  }
}

resource "aws_iam_role_policy" "controller" {
  name   = "aws-load-balancer-controller"
  role   = aws_iam_role.controller.id
  policy = data.aws_iam_policy_document.controller.json
}

resource "aws_eks_pod_identity_association" "controller" {
  cluster_name    = var.cluster_name
  namespace       = local.namespace
  service_account = local.sa_name
  role_arn        = aws_iam_role.controller.arn
}

resource "helm_release" "controller" {
  name       = "aws-load-balancer-controller"
  namespace  = local.namespace
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = var.chart_version
  wait       = true
  timeout    = 600

  values = [yamlencode({
    clusterName  = var.cluster_name
    region       = var.region
    vpcId        = var.vpc_id
    replicaCount = 2
    serviceAccount = {
      create = true
      name   = local.sa_name
    }
    # Services only: no Ingress class, no WAF/Shield integrations (not in the IAM policy).
    createIngressClassResource = false
    enableShield               = false
    enableWaf                  = false
    enableWafv2                = false
    nodeSelector               = { "fn.platform/role" = "system" }
    tolerations                = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
  })]

  depends_on = [
    aws_eks_pod_identity_association.controller,
    aws_iam_role_policy.controller,
  ]
}

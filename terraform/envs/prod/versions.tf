terraform {
  # use_lockfile (S3-native state locking) needs Terraform 1.10 or later.
  required_version = "~> 1.10"

  # Partial configuration: bucket and region come from backend.hcl
  # (terraform init -backend-config=backend.hcl; see backend.hcl.example).
  backend "s3" {
    key          = "fn/prod/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.38"
    }
    kubectl = {
      source  = "alekc/kubectl"
      version = "~> 2.1"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }
}

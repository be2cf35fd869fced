# T-Developer on AWS: the evolution and agents buckets, the state table, and
# least-privilege IAM policies for the engine (tdev evolve/run) and for the API
# (tdev serve). Then point tdev at it:
#
#   export AWS_REGION=<region>   # and credentials of a role with the engine policy
#   tdev store init --store "s3://<evolution>?agents=<agents>&table=<table>"
#
# terraform init && terraform apply -var 'prefix=tdev-prod'

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "prefix" {
  description = "Prefix of the bucket and table names (lowercase, digits, hyphens)."
  type        = string
  default     = "tdev"
}

locals {
  evolution_bucket = "${var.prefix}-evolution"
  agents_bucket    = "${var.prefix}-agents"
  state_table      = "${var.prefix}-state"
}

# --- buckets -------------------------------------------------------------------

resource "aws_s3_bucket" "evolution" {
  bucket = local.evolution_bucket
}

resource "aws_s3_bucket" "agents" {
  bucket = local.agents_bucket
}

resource "aws_s3_bucket_versioning" "evolution" {
  bucket = aws_s3_bucket.evolution.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "evolution" {
  bucket = aws_s3_bucket.evolution.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "agents" {
  bucket = aws_s3_bucket.agents.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "evolution" {
  bucket                  = aws_s3_bucket.evolution.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_public_access_block" "agents" {
  bucket                  = aws_s3_bucket.agents.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "evolution" {
  bucket = aws_s3_bucket.evolution.id
  rule {
    id     = "standard-ia-after-30-days"
    status = "Enabled"
    filter {}
    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }
    noncurrent_version_transition {
      noncurrent_days = 30
      storage_class   = "STANDARD_IA"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "agents" {
  bucket = aws_s3_bucket.agents.id
  rule {
    id     = "standard-ia-after-30-days"
    status = "Enabled"
    filter {}
    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }
  }
}

# --- state table ---------------------------------------------------------------

resource "aws_dynamodb_table" "state" {
  name         = local.state_table
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "evolution_id"
  range_key    = "generation"

  attribute {
    name = "evolution_id"
    type = "S"
  }
  attribute {
    name = "generation"
    type = "N"
  }
  attribute {
    name = "timestamp"
    type = "S"
  }

  global_secondary_index {
    name            = "timestamp-index"
    hash_key        = "evolution_id"
    range_key       = "timestamp"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

# --- IAM -----------------------------------------------------------------------

# Both the engine and the API list both buckets.
data "aws_iam_policy_document" "list_buckets" {
  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.evolution.arn, aws_s3_bucket.agents.arn]
  }
}

# The engine: reads and writes both buckets and the table (no deletes of buckets or
# the table, no bucket configuration).
data "aws_iam_policy_document" "engine" {
  source_policy_documents = [data.aws_iam_policy_document.list_buckets.json]
  statement {
    sid       = "Objects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.evolution.arn}/*", "${aws_s3_bucket.agents.arn}/*"]
  }
  statement {
    sid       = "State"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable"]
    resources = [aws_dynamodb_table.state.arn, "${aws_dynamodb_table.state.arn}/index/timestamp-index"]
  }
}

# The API (tdev serve): reads everything; writes only quarantine decisions, rollback
# heads and the emergency-stop marker.
data "aws_iam_policy_document" "api" {
  source_policy_documents = [data.aws_iam_policy_document.list_buckets.json]
  statement {
    sid       = "Read"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.evolution.arn}/*", "${aws_s3_bucket.agents.arn}/*"]
  }
  statement {
    sid     = "QuarantineDecisions"
    actions = ["s3:PutObject", "s3:DeleteObject"]
    resources = [
      "${aws_s3_bucket.agents.arn}/quarantine/*",
      "${aws_s3_bucket.agents.arn}/source/*",
    ]
  }
  statement {
    sid     = "RollbackAndStop"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.evolution.arn}/checkpoints/*",
      "${aws_s3_bucket.evolution.arn}/control/*",
    ]
  }
  statement {
    sid       = "ReadState"
    actions   = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable"]
    resources = [aws_dynamodb_table.state.arn, "${aws_dynamodb_table.state.arn}/index/timestamp-index"]
  }
}

resource "aws_iam_policy" "engine" {
  name   = "${var.prefix}-engine"
  policy = data.aws_iam_policy_document.engine.json
}

resource "aws_iam_policy" "api" {
  name   = "${var.prefix}-api"
  policy = data.aws_iam_policy_document.api.json
}

output "store_uri" {
  value = "s3://${local.evolution_bucket}?agents=${local.agents_bucket}&table=${local.state_table}"
}

# The fleet on top of the store of main.tf: the job queue with its dead-letter queue,
# `tdev worker` as an ECS Fargate service that scales on the backlog per worker, and
# `tdev serve` as a stateless ECS service behind an HTTPS load balancer. The image is
# built from deploy/Dockerfile (the release binary) and pushed to a registry you name.

variable "image" {
  description = "The tdev container image (deploy/Dockerfile), e.g. ACCOUNT.dkr.ecr.REGION.amazonaws.com/tdev:TAG"
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "private_subnets" {
  description = "Subnets of the workers and API tasks (with a NAT or VPC endpoints for S3, DynamoDB, SQS, ECR and logs)"
  type        = list(string)
}

variable "public_subnets" {
  description = "Subnets of the load balancer"
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the API's HTTPS listener"
  type        = string
}

variable "api_token_secret_arn" {
  description = "Secrets Manager secret holding TDEV_API_TOKEN"
  type        = string
}

variable "workers_min" {
  type    = number
  default = 0
}

variable "workers_max" {
  type    = number
  default = 100
}

variable "jobs_per_worker" {
  description = "Target backlog per worker: visible jobs per running worker task"
  type        = number
  default     = 2
}

variable "job_receives" {
  description = "Deliveries of a job before it moves to the dead-letter queue"
  type        = number
  default     = 5
}

data "aws_region" "current" {}

locals {
  store_uri = "s3://${local.evolution_bucket}?agents=${local.agents_bucket}&table=${local.state_table}"
}

# --- queue --------------------------------------------------------------------

resource "aws_sqs_queue" "dead" {
  name                      = "${var.prefix}-jobs-dead"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "jobs" {
  name                       = "${var.prefix}-jobs"
  visibility_timeout_seconds = 60
  message_retention_seconds  = 1209600
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead.arn
    maxReceiveCount     = var.job_receives
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dead" {
  queue_url = aws_sqs_queue.dead.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.jobs.arn]
  })
}

# --- IAM ----------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.prefix}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
}

# The execution role: AWS's managed policy for pulling images and writing logs, and
# reading the one secret.
resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "ApiToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.api_token_secret_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# A worker: the engine's store access, and taking jobs of its queue (it sends the next
# epoch's jobs to the same queue).
data "aws_iam_policy_document" "worker_queue" {
  statement {
    sid = "Jobs"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:SendMessage",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.jobs.arn]
  }
}

resource "aws_iam_role" "worker" {
  name               = "${var.prefix}-worker"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
}

resource "aws_iam_role_policy_attachment" "worker_store" {
  role       = aws_iam_role.worker.name
  policy_arn = aws_iam_policy.engine.arn
}

resource "aws_iam_role_policy" "worker_queue" {
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker_queue.json
}

resource "aws_iam_role" "api" {
  name               = "${var.prefix}-api"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
}

resource "aws_iam_role_policy_attachment" "api_store" {
  role       = aws_iam_role.api.name
  policy_arn = aws_iam_policy.api.arn
}

# Operators (`tdev submit`, `tdev rollback` of an island evolution, `tdev queue status`):
# the engine's store access, deleting the epoch rows a rollback moves aside, sending
# jobs and reading both queues' depth.
data "aws_iam_policy_document" "operator" {
  source_policy_documents = [data.aws_iam_policy_document.engine.json]
  statement {
    sid       = "RollbackRows"
    actions   = ["dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.state.arn]
  }
  statement {
    sid       = "Submit"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.jobs.arn, aws_sqs_queue.dead.arn]
  }
}

resource "aws_iam_policy" "operator" {
  name   = "${var.prefix}-operator"
  policy = data.aws_iam_policy_document.operator.json
}

# --- ECS ----------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "fleet" {
  name              = "/${var.prefix}/fleet"
  retention_in_days = 30
}

resource "aws_ecs_cluster" "fleet" {
  name = "${var.prefix}-fleet"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_security_group" "worker" {
  name   = "${var.prefix}-worker"
  vpc_id = var.vpc_id
  egress {
    description = "HTTPS to the AWS APIs"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.prefix}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 2048
  memory                   = 4096
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.worker.arn
  container_definitions = jsonencode([{
    name      = "worker"
    image     = var.image
    essential = true
    command   = ["worker", "--queue", aws_sqs_queue.jobs.url, "--store", local.store_uri]
    environment = [
      { name = "AWS_REGION", value = data.aws_region.current.name },
    ]
    readonlyRootFilesystem = true
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.fleet.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "worker"
      }
    }
  }])
}

resource "aws_ecs_service" "worker" {
  name            = "${var.prefix}-worker"
  cluster         = aws_ecs_cluster.fleet.id
  task_definition = aws_ecs_task_definition.worker.arn
  launch_type     = "FARGATE"
  desired_count   = var.workers_min
  network_configuration {
    subnets          = var.private_subnets
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }
  lifecycle {
    ignore_changes = [desired_count]
  }
}

# Autoscaling on the backlog per worker: visible jobs / running workers, tracked to
# var.jobs_per_worker.
resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.fleet.name}/${aws_ecs_service.worker.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.workers_min
  max_capacity       = var.workers_max
}

resource "aws_appautoscaling_policy" "backlog_per_worker" {
  name               = "${var.prefix}-backlog-per-worker"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.jobs_per_worker
    scale_in_cooldown  = 120
    scale_out_cooldown = 30
    customized_metric_specification {
      metrics {
        id          = "backlog"
        label       = "visible jobs"
        return_data = false
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.jobs.name
            }
          }
        }
      }
      metrics {
        id          = "workers"
        label       = "running workers"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.fleet.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.worker.name
            }
          }
        }
      }
      metrics {
        id          = "backlog_per_worker"
        label       = "visible jobs per running worker"
        expression  = "backlog / IF(workers > 0, workers, 1)"
        return_data = true
      }
    }
  }
}

# --- API behind HTTPS -------------------------------------------------------------

resource "aws_security_group" "alb" {
  name   = "${var.prefix}-alb"
  vpc_id = var.vpc_id
  ingress {
    description = "HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description = "HTTP, redirected to HTTPS"
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    description     = "to the API tasks"
    from_port       = 8080
    to_port         = 8080
    protocol        = "tcp"
    security_groups = [aws_security_group.api.id]
  }
}

resource "aws_security_group" "api" {
  name   = "${var.prefix}-api"
  vpc_id = var.vpc_id
  egress {
    description = "HTTPS to the AWS APIs"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group_rule" "api_from_alb" {
  type                     = "ingress"
  description              = "the load balancer"
  from_port                = 8080
  to_port                  = 8080
  protocol                 = "tcp"
  security_group_id        = aws_security_group.api.id
  source_security_group_id = aws_security_group.alb.id
}

resource "aws_lb" "api" {
  name                       = "${var.prefix}-api"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnets
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
}

resource "aws_lb_target_group" "api" {
  name        = "${var.prefix}-api"
  port        = 8080
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  health_check {
    path    = "/v1/healthz"
    matcher = "200"
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.api.arn
  port              = 80
  protocol          = "HTTP"
  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${var.prefix}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 2048
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.api.arn
  container_definitions = jsonencode([{
    name         = "api"
    image        = var.image
    essential    = true
    command      = ["serve", "--addr", "0.0.0.0:8080", "--store", local.store_uri]
    portMappings = [{ containerPort = 8080, protocol = "tcp" }]
    environment = [
      { name = "AWS_REGION", value = data.aws_region.current.name },
    ]
    secrets = [
      { name = "TDEV_API_TOKEN", valueFrom = var.api_token_secret_arn },
    ]
    readonlyRootFilesystem = true
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.fleet.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "api"
      }
    }
  }])
}

resource "aws_ecs_service" "api" {
  name            = "${var.prefix}-api"
  cluster         = aws_ecs_cluster.fleet.id
  task_definition = aws_ecs_task_definition.api.arn
  launch_type     = "FARGATE"
  desired_count   = 2
  network_configuration {
    subnets          = var.private_subnets
    security_groups  = [aws_security_group.api.id]
    assign_public_ip = false
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = 8080
  }
  depends_on = [aws_lb_listener.https]
}

output "queue_url" {
  value = aws_sqs_queue.jobs.url
}

output "dead_letter_queue_url" {
  value = aws_sqs_queue.dead.url
}

output "api_url" {
  value = "https://${aws_lb.api.dns_name}"
}

"""Checks deploy/: every .tf file parses as HCL2 and together they declare what the AWS
set-up needs (the store of main.tf, the fleet of fleet.tf), and the Dockerfile builds the
release binary."""
import json
import os
import sys

import hcl2

folder = sys.argv[1] if len(sys.argv) > 1 else "deploy"
tf = {}
for name in sorted(os.listdir(folder)):
    if name.endswith(".tf"):
        with open(os.path.join(folder, name)) as f:
            for k, v in hcl2.load(f).items():
                tf.setdefault(k, []).extend(v)


def unquote(v):
    """python-hcl2 keeps HCL's quotes around names and strings: drop them."""
    if isinstance(v, dict):
        return {unquote(k): unquote(x) for k, x in v.items() if k != "__is_block__"}
    if isinstance(v, list):
        return [unquote(x) for x in v]
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


tf = unquote(tf)

text = json.dumps(tf)
resources = {}
for block in tf.get("resource", []):
    for kind, named in block.items():
        for name, body in named.items():
            resources[(kind, name)] = body

datas = {}
for block in tf.get("data", []):
    for kind, named in block.items():
        for name, body in named.items():
            datas[(kind, name)] = body

failures = []
checks = 0


def need(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)


need(("aws_s3_bucket", "evolution") in resources, "evolution bucket")
need(("aws_s3_bucket", "agents") in resources, "agents bucket")
need(("aws_s3_bucket_versioning", "evolution") in resources and "Enabled" in json.dumps(resources[("aws_s3_bucket_versioning", "evolution")]), "versioning on the evolution bucket")
for b in ("evolution", "agents"):
    need(("aws_s3_bucket_server_side_encryption_configuration", b) in resources, f"SSE on {b}")
    lc = json.dumps(resources.get(("aws_s3_bucket_lifecycle_configuration", b), {}))
    need('"STANDARD_IA"' in lc and '"days": 30' in lc, f"30-day Standard-IA transition on {b}")
table = json.dumps(resources.get(("aws_dynamodb_table", "state"), {}))
need('"PAY_PER_REQUEST"' in table, "on-demand table")
need('"point_in_time_recovery"' in table and '"enabled": true' in table, "point-in-time recovery")
need('"timestamp-index"' in table, "GSI timestamp-index")
need('"evolution_id"' in table and '"generation"' in table, "table keys")
need(("aws_iam_policy", "engine") in resources and ("aws_iam_policy", "api") in resources, "IAM policies for the engine and the API")
need('"s3:*"' not in text and '"dynamodb:*"' not in text and '"*"' not in text, "no wildcard actions or resources")

# the fleet
jobs = json.dumps(resources.get(("aws_sqs_queue", "jobs"), {}))
need(("aws_sqs_queue", "dead") in resources, "dead-letter queue")
need("redrive_policy" in jobs and "deadLetterTargetArn" in jobs and "maxReceiveCount" in jobs, "redrive policy of the job queue")
need(("aws_sqs_queue_redrive_allow_policy", "dead") in resources, "the dead-letter queue takes jobs of the job queue only")
need(("aws_ecs_cluster", "fleet") in resources, "ECS cluster")
for svc in ("worker", "api"):
    body = json.dumps(resources.get(("aws_ecs_service", svc), {}))
    need('"FARGATE"' in body and '"assign_public_ip": false' in body, f"{svc} service on Fargate without public IPs")
    td = json.dumps(resources.get(("aws_ecs_task_definition", svc), {}))
    need("task_role_arn" in td and f"aws_iam_role.{svc}.arn" in td, f"{svc} tasks run as their own role")
need("load_balancer" in json.dumps(resources.get(("aws_ecs_service", "api"), {})), "the API service behind the load balancer")
scaling = json.dumps(resources.get(("aws_appautoscaling_policy", "backlog_per_worker"), {}))
need("ApproximateNumberOfMessagesVisible" in scaling and "RunningTaskCount" in scaling and "expression" in scaling, "autoscaling on the backlog per worker")
https = json.dumps(resources.get(("aws_lb_listener", "https"), {}))
need('"HTTPS"' in https and "certificate_arn" in https and "TLS13" in https, "HTTPS listener")
need('"redirect"' in json.dumps(resources.get(("aws_lb_listener", "http"), {})), "HTTP redirected to HTTPS")
need("sqs:ReceiveMessage" in text and '"sqs:*"' not in text and '"ecs:*"' not in text, "least-privilege queue access for workers")
need(("aws_iam_policy", "operator") in resources and "dynamodb:DeleteItem" in json.dumps(datas.get(("aws_iam_policy_document", "operator"), {})), "operators may delete the epoch rows a rollback moves aside")
need("dynamodb:DeleteItem" not in json.dumps(datas.get(("aws_iam_policy_document", "engine"), {"x": "dynamodb:DeleteItem"})), "workers delete no state rows")
with open(os.path.join(folder, "Dockerfile")) as f:
    docker = f.read()
need("cargo build --release --locked" in docker and "ENTRYPOINT" in docker and "USER nonroot" in docker, "Dockerfile: the release binary, run as non-root")

for f in failures:
    print(f"deploy check failed: {f}")
print(f"deploy: {checks - len(failures)} checks passed, {len(failures)} failed")
sys.exit(1 if failures else 0)

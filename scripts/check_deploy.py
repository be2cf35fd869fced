"""Checks deploy/main.tf: it parses as HCL2 and declares what the AWS set-up needs."""
import json
import sys

import hcl2

path = sys.argv[1] if len(sys.argv) > 1 else "deploy/main.tf"
with open(path) as f:
    tf = hcl2.load(f)


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

failures = []
CHECKS = 13


def need(cond, what):
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

for f in failures:
    print(f"deploy check failed: {f}")
print(f"deploy: {CHECKS - len(failures)} checks passed, {len(failures)} failed")
sys.exit(1 if failures else 0)

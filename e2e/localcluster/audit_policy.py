"""The API server's audit policy: what `logs/audit.log` records (Metadata level, one JSON event a line).

- every write (create/update/patch/delete/deletecollection), by anyone: tests count the operator's
  writes by `user.username`;
- every request, reads (get/list/watch) included, of the ServiceAccounts in the operator's namespace
  (`OPERATOR_GROUP`): tests/integration/test_rbac_rules_used.py checks that each RBAC rule is used and
  nothing is refused, and a benchmark can count the operator's reads.

The API server reads the policy when it starts: a cluster started with an older policy keeps it
until `bash e2e/cluster.sh down && bash e2e/cluster.sh up`.
"""

from __future__ import annotations

from pathlib import Path

OPERATOR_NAMESPACE = "modeldeploy-system"
OPERATOR_GROUP = f"system:serviceaccounts:{OPERATOR_NAMESPACE}"

AUDIT_POLICY = f"""\
# Written by e2e/localcluster/audit_policy.py; the API server reads it when it starts.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  userGroups: ["{OPERATOR_GROUP}"]
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
"""


def write_audit_policy(path: Path) -> None:
    path.write_text(AUDIT_POLICY, encoding="utf-8")

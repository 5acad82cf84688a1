"""The monitoring kit (manifests/monitoring): every PromQL expression is checked by Prometheus' own
promtool, each alert is unit-tested on the series the operator exports, the scrape configuration
gives exactly the labels the guardrail templates select on, and every operator metric the kit reads
is one the operator exports. (Each expression returning data from a real Prometheus during a real
rollout: e2e/tests/test_monitoring_queries.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from modeldeploy.analysis.templates import POD_LABEL_DEPLOYMENT, POD_LABEL_REVISION, TARGET_LABELS
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.observability import forget_status, record_status

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "manifests" / "monitoring"
# Grafana's variables, replaced by values Prometheus accepts (the e2e test uses the real ones)
GRAFANA_VARIABLES = {"$namespace": "ml-prod", "$md": "fraud", "$__rate_interval": "1m"}


def load(name: str) -> Any:
    return yaml.safe_load((KIT / name).read_text())


def dashboard() -> Any:
    return json.loads((KIT / "grafana-dashboard.json").read_text())


def dashboard_queries() -> dict[str, str]:
    """Every PromQL expression of the dashboard: panel targets and annotations, by where they are."""
    board = dashboard()
    found = {f"panel {p['title']} {t['refId']}": t["expr"] for p in board["panels"] for t in p["targets"]}
    found.update({f"annotation {a['name']}": a["expr"] for a in board["annotations"]["list"]})
    return found


def rule_expressions() -> dict[str, str]:
    return {r["alert"]: r["expr"] for g in load("prometheusrule.yaml")["spec"]["groups"] for r in g["rules"]}


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # e2e/setup.sh puts it on PATH; outside it, install it the same way
        built = subprocess.run(
            ["bash", str(ROOT / "e2e" / "promtool.sh")], capture_output=True, text=True, timeout=900
        )
        assert built.returncode == 0, built.stderr
        found = built.stdout.strip()
    return found


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def write_rules(directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": load("prometheusrule.yaml")["spec"]["groups"]}))
    return path


def test_promtool_check_rules_accepts_the_prometheusrule(promtool: str, tmp_path: Path) -> None:
    result = run(promtool, "check", "rules", str(write_rules(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in result.stdout


def test_each_alert_fires_on_its_series_and_only_then(promtool: str, tmp_path: Path) -> None:
    write_rules(tmp_path)
    shutil.copy(KIT / "tests" / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    tested = {m for m in re.findall(r"alertname: (\w+)", (tmp_path / "alerts_test.yaml").read_text())}
    assert tested == set(rule_expressions())
    result = run(promtool, "test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_wrong_alert_expectation_fails(promtool: str, tmp_path: Path) -> None:
    write_rules(tmp_path)
    text = (KIT / "tests" / "alerts_test.yaml").read_text()
    (tmp_path / "alerts_test.yaml").write_text(text.replace("eval_time: 4m", "eval_time: 6m", 1))
    result = run(promtool, "test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "alertname: ModelDeploymentRolledBack, time: 6m" in result.stdout + result.stderr


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substitute(expr)}
        for i, expr in enumerate(queries.values())
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    # and promtool does refuse a broken one
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "d", "rules": [{"record": "x:y", "expr": "sum(("}]}]})
    )
    assert run(promtool, "check", "rules", str(path), cwd=tmp_path).returncode == 1


def test_podmonitor_relabelling_is_what_the_templates_select_on() -> None:
    endpoint = load("podmonitor-models.yaml")["spec"]["podMetricsEndpoints"][0]

    def meta(pod_label: str) -> str:
        return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", pod_label)

    relabel = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert relabel == {
        "namespace": ["__meta_kubernetes_namespace"],
        "pod": ["__meta_kubernetes_pod_name"],
        "revision": [meta(POD_LABEL_REVISION)],
        "md": [meta(POD_LABEL_DEPLOYMENT)],
    }
    assert set(relabel) == set(TARGET_LABELS)
    assert endpoint["port"] == "metrics"  # the port name of both runtimes' metrics port


def test_servicemonitor_scrapes_the_operators_metrics_port() -> None:
    deployment = yaml.safe_load((ROOT / "manifests" / "base" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    service = load("service-operator-metrics.yaml")
    monitor = load("servicemonitor-operator.yaml")
    assert service["spec"]["ports"][0]["targetPort"] in ports
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["honorLabels"] is True  # the metrics' own namespace label wins
    # the alerts' job label is the Service's name
    assert all(
        'job="' + service["metadata"]["name"] + '"' in e for e in rule_expressions().values() if "up{" in e
    )


def test_every_operator_metric_the_kit_reads_is_exported() -> None:
    exported = {
        name for collector in REGISTRY._collector_to_names for name in REGISTRY._collector_to_names[collector]
    }
    text = (KIT / "prometheusrule.yaml").read_text() + (KIT / "grafana-dashboard.json").read_text()
    used = set(re.findall(r"\bmodeldeploy_[a-z_]+", text))
    assert used >= {"modeldeploy_phase", "modeldeploy_canary_weight", "modeldeploy_revision_role"}
    assert used - exported == set()


def test_status_metrics_follow_the_modeldeployment() -> None:
    def sample(metric: str, **labels: str) -> float | None:
        value: float | None = REGISTRY.get_sample_value(metric, labels)
        return value

    rolling = ModelDeploymentStatus(
        phase="Progressing", stable_revision="aaaa", canary_revision="bbbb", canary_weight=25
    )
    record_status("kit", "md", rolling)
    assert sample("modeldeploy_phase", namespace="kit", name="md", phase="Progressing") == 1
    assert sample("modeldeploy_phase", namespace="kit", name="md", phase="Healthy") is None  # one series
    assert sample("modeldeploy_canary_weight", namespace="kit", name="md") == 25
    assert (
        sample("modeldeploy_revision_role", namespace="kit", name="md", revision="bbbb", role="canary") == 1
    )
    record_status("kit", "md", ModelDeploymentStatus(phase="Healthy", stable_revision="bbbb"))
    assert sample("modeldeploy_phase", namespace="kit", name="md", phase="Healthy") == 1
    assert sample("modeldeploy_phase", namespace="kit", name="md", phase="Progressing") is None
    assert (
        sample("modeldeploy_revision_role", namespace="kit", name="md", revision="bbbb", role="stable") == 1
    )
    # the old roles are gone, not left at 1
    assert (
        sample("modeldeploy_revision_role", namespace="kit", name="md", revision="aaaa", role="stable")
        is None
    )
    assert (
        sample("modeldeploy_revision_role", namespace="kit", name="md", revision="bbbb", role="canary")
        is None
    )
    forget_status("kit", "md")
    assert sample("modeldeploy_phase", namespace="kit", name="md", phase="Healthy") is None
    assert sample("modeldeploy_canary_weight", namespace="kit", name="md") is None
    forget_status("kit", "never-recorded")  # no error

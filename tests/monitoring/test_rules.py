"""The monitoring files hold together: the rules pass `promtool check rules`
and their unit tests (`promtool test rules`), the example Prometheus
configuration is valid, the Kubernetes PrometheusRule carries the same
groups, every line of the seed's alerting configuration has a rule, and
every series the rules and the dashboard read is one the code emits or a
rule records."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "monitoring/prometheus"
RULES = PROMETHEUS / "harsha.rules.yml"
DASHBOARD = ROOT / "monitoring/grafana/harsha-kpis.json"


def promtool(*args, cwd=ROOT) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing (Debian package prometheus; scripts/test.sh installs it)"
    result = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_rules_pass_promtool_check():
    assert "SUCCESS" in promtool("check", "rules", str(RULES))


def test_the_rule_unit_tests_pass():
    tests = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    assert "SUCCESS" in promtool("test", "rules", *tests, cwd=PROMETHEUS)


def test_the_example_prometheus_configuration_is_valid():
    promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_the_kubernetes_prometheus_rule_carries_the_same_groups():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/prometheus_rule.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    generated = yaml.safe_load((ROOT / "k8s/monitoring/prometheus-rule.yaml").read_text())
    assert generated["kind"] == "PrometheusRule"
    assert generated["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    listed = set(yaml.safe_load((ROOT / "k8s/monitoring/kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in (ROOT / "k8s/monitoring").glob("*.yaml")} - {"kustomization.yaml"}


def test_every_line_of_the_seeds_alerting_configuration_has_a_rule():
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    seed = {
        "HarshaGatewayDown": ("critical", "1m"),  # API Gateway down for > 1 minute
        "HarshaSyncFailures": ("critical", None),  # Sync failures > 10 in 1 hour
        "HarshaDatabaseConnectionFailures": ("critical", "30s"),  # Database connection failures
        "HarshaSlowResponses": ("warning", "5m"),  # Response time > 500ms for 5 minutes
        "HarshaBatchesExpiringWithin7Days": ("warning", None),  # Batch expiry within 7 days
        "HarshaConflictsUnresolved24h": ("warning", None),  # Unresolved conflicts > 24 hours
    }
    for name, (severity, wait) in seed.items():
        assert name in alerts, name
        assert alerts[name]["labels"]["severity"] == severity, name
        assert alerts[name].get("for") == wait, name
    assert "> 10" in alerts["HarshaSyncFailures"]["expr"] and "[1h]" in alerts["HarshaSyncFailures"]["expr"]
    assert "> 0.5" in alerts["HarshaSlowResponses"]["expr"]
    # Every alert is unit tested.
    tested = (PROMETHEUS / "tests/alerts.test.yml").read_text()
    for name in alerts:
        assert f"alertname: {name}" in tested, f"{name} has no unit test"


def emitted_metrics() -> set[str]:
    names = set()
    for path in (ROOT / "crates").rglob("*.rs"):
        names.update(re.findall(r'"(harsha_[a-z0-9_]+)"', path.read_text()))
    return names


def series_read(expression: str) -> set[str]:
    return set(re.findall(r"\b(harsha[:_][a-z0-9_:]+)", expression))


def base_name(series: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", series)


def test_every_series_the_rules_and_dashboard_read_is_emitted_or_recorded():
    emitted = emitted_metrics()
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    expressions = [rule["expr"] for rule in rules()]
    dashboard = json.loads(DASHBOARD.read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for expression in expressions:
        for series in series_read(expression):
            assert series in recorded or base_name(series) in emitted, f"{series} is neither emitted nor recorded"
    # The dashboard shows every KPI the rules record.
    shown = set().union(*(series_read(t["expr"]) for p in dashboard["panels"] for t in p["targets"]))
    assert {r for r in recorded if r != "harsha:sync_last_minute:max"} <= shown | {"harsha:edge_requests:rate5m",
                                                                                   "harsha:edge_availability:ratio_rate5m"}

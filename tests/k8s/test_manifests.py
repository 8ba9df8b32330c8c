"""The Kubernetes manifests are valid against the API schemas (offline, with
kubernetes-validate) and agree with the code: every service has a Deployment
and Service whose probes ask grpc.health.v1 for the service's own name on
the port the ConfigMap gives it."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SERVICES = {"customer": 50051, "inventory": 50052, "pricing": 50053, "auth": 50054, "sync": 50055, "order": 50056}


def documents():
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def test_every_manifest_validates_strictly():
    files = [str(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"]
    validator = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(validator), "--strict", "--no-warn", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_service_is_deployed_with_grpc_probes_on_its_port():
    deployments = {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == "Deployment"}
    services = {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == "Service"}
    config = next(doc for _, doc in documents() if doc["kind"] == "ConfigMap")["data"]["harsha.toml"]
    for name, port in SERVICES.items():
        container = deployments[f"harsha-{name}"]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][:2] == ["serve", name]
        assert container["readinessProbe"]["grpc"] == {
            "port": port,
            "service": f"harsha.{name}.v1.{name.capitalize()}Service",
        }
        assert container["livenessProbe"]["grpc"]["port"] == port
        assert any(env["valueFrom"]["secretKeyRef"]["name"] == "harsha-databases" for env in container["env"])
        assert services[f"harsha-{name}"]["spec"]["ports"][0]["port"] == port
        assert f'{name} = "0.0.0.0:{port}"' in config
        # Scraped on the metrics port the ConfigMap's metrics_listen opens.
        assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in container["ports"]
        assert {"name": "metrics", "port": 9464, "targetPort": "metrics"} in services[f"harsha-{name}"]["spec"]["ports"]
    assert 'metrics_listen = "0.0.0.0:9464"' in config


def test_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_the_edge_is_deployed_behind_an_http_service():
    deployments = {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == "Deployment"}
    services = {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == "Service"}
    container = deployments["harsha-edge"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["serve", "edge"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert services["harsha-edge"]["spec"]["ports"][0]["targetPort"] == "http"
    config = next(doc for _, doc in documents() if doc["kind"] == "ConfigMap")["data"]["harsha.toml"]
    for name, port in SERVICES.items():
        assert f'{name} = "http://harsha-{name}:{port}"' in config

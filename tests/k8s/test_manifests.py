"""The Kubernetes manifests, as each layout renders them (k8s/base and the
dev and prod overlays, with kustomize), are valid against the API schemas
(offline, with kubernetes-validate) and agree with the code: every service
has a Deployment and Service whose probes ask grpc.health.v1 for the
service's own name on the port the ConfigMap gives it. Production scales and
protects every Deployment, the NetworkPolicies admit exactly the mesh's call
graph, and scripts/blue_green.sh prints the switch it would make."""

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import kustomize_lite
from kustomize_lite import build as build_lite

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
BASE = K8S / "base"
LAYOUTS = {"base": BASE, "dev": K8S / "overlays/dev", "prod": K8S / "overlays/prod"}
BLUE_GREEN = ROOT / "scripts/blue_green.sh"
SERVICES = {"customer": 50051, "inventory": 50052, "pricing": 50053, "auth": 50054, "sync": 50055, "order": 50056}
EDGE_PORT = 8080
METRICS_PORT = 9464
NAME = "app.kubernetes.io/name"
TRACK = "harsha.dev/track"

# Who calls each gRPC service: the only sources its gRPC port may admit.
CALLERS = {
    "customer": {"edge", "pricing", "order"},  # pricing reads customer profiles
    "inventory": {"edge", "order"},
    "pricing": {"edge", "order"},
    "auth": {"edge", "customer", "inventory", "pricing", "sync", "order"},  # token keys, revocations, API keys
    "sync": {"edge"},  # it reads the erp outbox itself
    "order": {"edge"},
}
MONITORING = "namespace:monitoring"
ANYONE = "*"


def kustomize() -> list[str] | None:
    """Real kustomize: the standalone binary, else the one built into kubectl."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@functools.cache
def render(directory: Path) -> tuple:
    command = kustomize()
    if command is None:
        return tuple(build_lite(directory))
    result = subprocess.run([*command, str(directory)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs, kind) -> dict:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def config(docs) -> str:
    return next(iter(of_kind(docs, "ConfigMap").values()))["data"]["harsha.toml"]


def selects(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels, matchExpressions with In) against labels."""
    if set(selector) - {"matchLabels", "matchExpressions"}:
        raise NotImplementedError(selector)
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        if expression["operator"] != "In":
            raise NotImplementedError(expression)
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def pod_labels(docs) -> dict:
    """Each workload's pod labels, by workload name."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"]
        for doc in docs
        if doc["kind"] in {"Deployment", "Job"}
    }


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_renders_and_validates_strictly(layout, tmp_path):
    rendered = tmp_path / f"{layout}.yaml"
    rendered.write_text(yaml.safe_dump_all(render(LAYOUTS[layout]), sort_keys=False))
    validator = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(validator), "--strict", "--no-warn", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_k8s_applies_the_prod_overlay():
    assert yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"] == ["overlays/prod"]
    assert sorted(map(json.dumps, render(K8S))) == sorted(map(json.dumps, render(LAYOUTS["prod"])))


def test_kustomizations_list_every_manifest():
    for directory in LAYOUTS.values():
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        listed = {r for r in kustomization["resources"] if not r.startswith("..")}
        listed |= {p["path"] for p in kustomization.get("patches", []) if "path" in p}
        present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present, directory
    for overlay in ("dev", "prod"):
        assert "../../base" in yaml.safe_load((LAYOUTS[overlay] / "kustomization.yaml").read_text())["resources"]
    # Nothing left over from the flat layout.
    assert {p.name for p in K8S.glob("*.yaml")} == {"kustomization.yaml"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_service_is_deployed_with_grpc_probes_on_its_port(layout):
    docs = render(LAYOUTS[layout])
    deployments, services, toml = of_kind(docs, "Deployment"), of_kind(docs, "Service"), config(docs)
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
        assert f'{name} = "0.0.0.0:{port}"' in toml
        # Scraped on the metrics port the ConfigMap's metrics_listen opens.
        assert {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"} in container["ports"]
        assert {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"} in services[f"harsha-{name}"]["spec"][
            "ports"
        ]
    assert f'metrics_listen = "0.0.0.0:{METRICS_PORT}"' in toml


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_edge_is_deployed_behind_an_http_service(layout):
    docs = render(LAYOUTS[layout])
    container = of_kind(docs, "Deployment")["harsha-edge"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["serve", "edge"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"name": "http", "containerPort": EDGE_PORT, "protocol": "TCP"} in container["ports"]
    assert of_kind(docs, "Service")["harsha-edge"]["spec"]["ports"][0]["targetPort"] == "http"
    assert f'listen = "0.0.0.0:{EDGE_PORT}"' in config(docs)
    for name, port in SERVICES.items():
        assert f'{name} = "http://harsha-{name}:{port}"' in config(docs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_deployment_starts_slowly_and_spreads(layout):
    for name, deployment in of_kind(render(LAYOUTS[layout]), "Deployment").items():
        pod = deployment["spec"]["template"]
        probe = pod["spec"]["containers"][0]["startupProbe"]
        if name == "harsha-edge":
            assert probe["httpGet"] == {"path": "/healthz", "port": "http"}
        else:
            assert probe["grpc"] == {"port": SERVICES[name.removeprefix("harsha-")], "service": ""}
        assert probe["periodSeconds"] * probe["failureThreshold"] >= 60, name
        spread = {c["topologyKey"]: c for c in pod["spec"]["topologySpreadConstraints"]}
        assert set(spread) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name
        for constraint in spread.values():
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
            assert constraint["maxSkew"] == 1
            # Every pod of the service, whichever blue-green track it is on.
            assert constraint["labelSelector"] == {"matchLabels": {NAME: name}}
            assert selects(constraint["labelSelector"], pod["metadata"]["labels"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_services_select_the_blue_track(layout):
    docs = render(LAYOUTS[layout])
    deployments = of_kind(docs, "Deployment")
    assert set(deployments) == {f"harsha-{name}" for name in [*SERVICES, "edge"]}
    for name, service in of_kind(docs, "Service").items():
        deployment = deployments[name]
        assert service["spec"]["selector"] == {NAME: name, TRACK: "blue"}
        assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        assert deployment["metadata"]["labels"][TRACK] == "blue"
        assert selects(
            {"matchLabels": service["spec"]["selector"]}, deployment["spec"]["template"]["metadata"]["labels"]
        )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_runs_the_migration_job(layout):
    job = of_kind(render(LAYOUTS[layout]), "Job")["harsha-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate"


def test_prod_autoscales_and_protects_every_deployment():
    docs = render(LAYOUTS["prod"])
    deployments, labels = of_kind(docs, "Deployment"), pod_labels(docs)
    autoscalers = list(of_kind(docs, "HorizontalPodAutoscaler").values())
    budgets = list(of_kind(docs, "PodDisruptionBudget").values())
    assert len(autoscalers) == len(budgets) == len(deployments) == 7
    for name, deployment in deployments.items():
        # The autoscaler owns the replica count; `kubectl apply` must not reset it.
        assert "replicas" not in deployment["spec"], name
        assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
        (hpa,) = [h for h in autoscalers if h["spec"]["scaleTargetRef"]["name"] == name]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"] <= 10, name
        assert hpa["spec"]["metrics"] == [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
            }
        ]
        (pdb,) = [p for p in budgets if selects(p["spec"]["selector"], labels[name])]
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1, name
        # It covers this service's pods only.
        assert [other for other, pod in labels.items() if selects(pdb["spec"]["selector"], pod)] == [name]


def test_dev_runs_one_small_replica_of_each_without_autoscaling():
    base, dev = render(BASE), render(LAYOUTS["dev"])
    assert not of_kind(dev, "HorizontalPodAutoscaler") and not of_kind(dev, "PodDisruptionBudget")
    for name, deployment in of_kind(dev, "Deployment").items():
        assert deployment["spec"]["replicas"] == 1
        assert of_kind(base, "Deployment")[name]["spec"]["replicas"] == 2
        small = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
        full = of_kind(base, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert millicores(small["requests"]["cpu"]) < millicores(full["requests"]["cpu"])
        assert mebibytes(small["requests"]["memory"]) < mebibytes(full["requests"]["memory"])
        assert small["limits"] == full["limits"]


def millicores(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def admitted(docs, workload: str, port: int) -> set[str]:
    """The sources the NetworkPolicies let reach WORKLOAD's pods on PORT:
    workload names in the namespace, namespace:NAME, or * for anyone."""
    labels = pod_labels(docs)
    policies = [
        p
        for p in of_kind(docs, "NetworkPolicy").values()
        if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels[workload])
    ]
    assert policies, f"{workload} accepts anything: no ingress policy selects it"
    sources = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
                continue
            for peer in rule.get("from") or [{}]:
                if not peer:
                    sources.add(ANYONE)
                elif set(peer) == {"podSelector"}:
                    sources |= {name for name, pod in labels.items() if selects(peer["podSelector"], pod)}
                elif set(peer) == {"namespaceSelector"}:
                    assert set(peer["namespaceSelector"]) == {"matchLabels"}
                    sources.add(f"namespace:{peer['namespaceSelector']['matchLabels']['kubernetes.io/metadata.name']}")
                else:
                    raise AssertionError(f"{policy['metadata']['name']}: unexpected peer {peer}")
    return sources


@pytest.mark.parametrize("layout", LAYOUTS)
def test_network_policies_admit_exactly_the_call_graph(layout):
    docs = render(LAYOUTS[layout])
    policies = of_kind(docs, "NetworkPolicy")
    # Every pod in the namespace refuses what no policy admits.
    assert {"podSelector": {}, "policyTypes": ["Ingress"]} in [p["spec"] for p in policies.values()]
    # Egress is left open (k8s/README.md says why).
    assert not [p for p in policies.values() if "Egress" in p["spec"]["policyTypes"]]
    other_port = 12345
    for name, port in SERVICES.items():
        workload = f"harsha-{name}"
        assert admitted(docs, workload, port) == {f"harsha-{c}" for c in CALLERS[name]}, name
        assert admitted(docs, workload, METRICS_PORT) == {MONITORING}, name
        assert admitted(docs, workload, other_port) == set(), name
    assert admitted(docs, "harsha-edge", EDGE_PORT) == {ANYONE}
    assert admitted(docs, "harsha-edge", METRICS_PORT) == set()
    for port in [EDGE_PORT, METRICS_PORT, *SERVICES.values()]:
        assert admitted(docs, "harsha-migrate", port) == set()


def test_the_call_graph_matches_the_configured_endpoints():
    """The service-to-service edges of CALLERS are the endpoints the ConfigMap
    configures: pricing's customer_endpoint, order's three, and the [auth]
    endpoint every service fetches keys from (the edge's are its upstreams)."""
    toml = config(render(BASE))
    assert 'customer_endpoint = "http://harsha-customer:50051"' in toml.split("[pricing]")[1].split("[auth]")[0]
    order = toml.split("[order]")[1]
    for callee in ("customer", "inventory", "pricing"):
        assert f'{callee}_endpoint = "http://harsha-{callee}:{SERVICES[callee]}"' in order
        assert "order" in CALLERS[callee]
    assert 'endpoint = "http://harsha-auth:50054"' in toml.split("[auth]")[1]


def test_kustomize_lite_renders_as_kustomize_does():
    """The fallback renderer agrees with real kustomize (where one is installed)."""
    if kustomize() is None:
        pytest.skip("neither kustomize nor kubectl is installed")
    for directory in [K8S, *LAYOUTS.values()]:
        lite = sorted(json.dumps(doc, sort_keys=True) for doc in build_lite(directory))
        real = sorted(json.dumps(doc, sort_keys=True) for doc in render(directory))
        assert lite == real, directory


def test_an_overlay_can_pin_the_image(tmp_path):
    """A release by tag (k8s/README.md): an `images` entry in an overlay
    moves every Deployment and the migration Job, with either renderer."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(LAYOUTS["prod"], tmp_path)],
                "images": [{"name": "harsha-mesh", "newName": "registry.example:5000/harsha-mesh", "newTag": "0.2.0"}],
            }
        )
    )
    renderings = [build_lite(tmp_path)] + ([render(tmp_path)] if kustomize() else [])
    for docs in renderings:
        images = {
            c["image"] for doc in docs if doc["kind"] in {"Deployment", "Job"} for c in kustomize_lite.containers(doc)
        }
        assert images == {"registry.example:5000/harsha-mesh:0.2.0"}
    assert len({json.dumps(sorted(json.dumps(d, sort_keys=True) for d in docs)) for docs in renderings}) == 1


# Blue-green (scripts/blue_green.sh); no cluster here, so --dry-run, and a
# stand-in kubectl for the real path.


def blue_green(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BLUE_GREEN), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT
    )


def commands(output: str) -> list[str]:
    """The commands a dry run prints (comments left out)."""
    return [line for line in output.splitlines() if line and not line.startswith("#")]


def patch_selector(track: str) -> str:
    return f"""-p '{{"spec":{{"selector":{{"harsha.dev/track":"{track}"}}}}}}'"""


def test_blue_green_dry_run_deploys_green_then_switches():
    result = blue_green("--dry-run", "deploy", "order", "0.2.0")
    assert result.returncode == 0, result.stderr
    run = commands(result.stdout)
    assert run == [
        "kubectl -n harsha get deployment harsha-order -o json"
        f" | {BLUE_GREEN} render-track green harsha-mesh:0.2.0 2 | kubectl -n harsha apply -f -",
        "kubectl -n harsha rollout status deployment/harsha-order-green --timeout=10m",
        f"kubectl -n harsha patch service harsha-order --type merge {patch_selector('green')}",
        "kubectl -n harsha patch hpa harsha-order --type merge"
        """ -p '{"spec":{"scaleTargetRef":{"name":"harsha-order-green"}}}'""",
    ]
    # It read which track serves before choosing the other.
    assert "# kubectl -n harsha get service harsha-order" in result.stdout


def test_blue_green_dry_run_deploys_blue_when_green_serves():
    result = blue_green(
        "--dry-run", "--current", "green", "--repo", "registry.example/harsha-mesh", "deploy", "edge", "0.3.1"
    )
    assert result.returncode == 0, result.stderr
    assert commands(result.stdout) == [
        "kubectl -n harsha set image deployment/harsha-edge '*=registry.example/harsha-mesh:0.3.1'",
        "kubectl -n harsha scale deployment/harsha-edge --replicas=2",
        "kubectl -n harsha rollout status deployment/harsha-edge --timeout=10m",
        f"kubectl -n harsha patch service harsha-edge --type merge {patch_selector('blue')}",
        "kubectl -n harsha patch hpa harsha-edge --type merge"
        """ -p '{"spec":{"scaleTargetRef":{"name":"harsha-edge"}}}'""",
    ]


def test_blue_green_dry_run_rolls_back():
    result = blue_green("--dry-run", "--current", "green", "rollback", "customer")
    assert result.returncode == 0, result.stderr
    run = commands(result.stdout)
    assert run[:2] == [
        "kubectl -n harsha scale deployment/harsha-customer --replicas=2",
        "kubectl -n harsha rollout status deployment/harsha-customer --timeout=10m",
    ]
    assert run[2] == f"kubectl -n harsha patch service harsha-customer --type merge {patch_selector('blue')}"


def test_blue_green_dry_run_migrates_with_the_new_image():
    result = blue_green("--dry-run", "migrate", "0.2.0")
    assert result.returncode == 0, result.stderr
    assert commands(result.stdout) == [
        "kubectl -n harsha delete job harsha-migrate --ignore-not-found",
        f"kubectl set image --local -f {BASE / 'migrate-job.yaml'} migrate=harsha-mesh:0.2.0 -o yaml"
        " | kubectl -n harsha apply -f -",
        "kubectl -n harsha wait --for=condition=complete job/harsha-migrate --timeout=10m",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("deploy", "billing", "1.0"),
        ("deploy", "order", "no/tag"),
        ("rollback",),
        ("--current", "red", "status", "edge"),
    ],
)
def test_blue_green_refuses_bad_arguments(args):
    result = blue_green("--dry-run", *args)
    assert result.returncode != 0
    assert "kubectl -n" not in commands(result.stdout)


def green_from(deployment: dict, image="harsha-mesh:0.2.0", replicas="3") -> dict:
    result = subprocess.run(
        [str(BLUE_GREEN), "render-track", "green", image, replicas],
        input=json.dumps(deployment),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(not shutil.which("jq"), reason="blue_green.sh needs jq")
def test_the_green_track_is_a_valid_copy_the_switched_service_selects(tmp_path):
    docs = render(LAYOUTS["prod"])
    blue = of_kind(docs, "Deployment")["harsha-order"]
    green = green_from(blue)
    rendered = tmp_path / "green.yaml"
    rendered.write_text(yaml.safe_dump(green))
    validator = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(validator), "--strict", "--no-warn", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert green["metadata"]["name"] == "harsha-order-green"
    assert green["spec"]["replicas"] == 3
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == "harsha-mesh:0.2.0"
    switched = {**of_kind(docs, "Service")["harsha-order"]["spec"]["selector"], TRACK: "green"}
    assert green["spec"]["selector"]["matchLabels"] == switched
    assert selects({"matchLabels": switched}, green["spec"]["template"]["metadata"]["labels"])
    assert not selects({"matchLabels": switched}, blue["spec"]["template"]["metadata"]["labels"])
    # Same pods otherwise: probes, spread, policies and budgets still apply.
    assert (
        green["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
        == blue["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    )
    assert green["spec"]["template"]["metadata"]["labels"][NAME] == "harsha-order"


FAKE_KUBECTL = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
    if args[-3:] == ["apply", "-f", "-"]:
        log.write(json.dumps({"applied": json.load(sys.stdin)}) + "\\n")
if args[2:4] == ["get", "service"]:
    print(os.environ["FAKE_TRACK"], end="")
elif args[2:4] == ["get", "hpa"]:
    print("horizontalpodautoscaler.autoscaling/" + args[4])
elif args[2:4] == ["get", "deployment"] and "--ignore-not-found" in args:
    print("deployment.apps/" + args[4])
elif args[2:4] == ["get", "deployment"] and args[-1] == "json":
    print(os.environ["FAKE_DEPLOYMENT"])
elif args[2:4] == ["get", "deployment"] and "replicas" in args[-1]:
    print("5", end="")
elif args[2:4] == ["get", "deployment"]:
    print("registry.example:5000/harsha-mesh:0.1.0", end="")
"""


@pytest.mark.skipif(not shutil.which("jq"), reason="blue_green.sh needs jq")
def test_blue_green_runs_the_same_commands_against_kubectl(tmp_path):
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "log"
    blue = of_kind(render(LAYOUTS["prod"]), "Deployment")["harsha-pricing"]
    env = {"KUBECTL": str(kubectl), "FAKE_LOG": str(log), "FAKE_TRACK": "blue", "FAKE_DEPLOYMENT": json.dumps(blue)}
    result = blue_green("deploy", "pricing", "0.2.0", env=env)
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    changes = [c for c in calls if isinstance(c, dict) or c[2] not in {"get"}]
    applied = changes[1]["applied"]
    assert applied["metadata"]["name"] == "harsha-pricing-green"
    assert applied["spec"]["replicas"] == 5
    assert applied["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example:5000/harsha-mesh:0.2.0"
    assert changes[0] == ["-n", "harsha", "apply", "-f", "-"]
    assert changes[2:] == [
        ["-n", "harsha", "rollout", "status", "deployment/harsha-pricing-green", "--timeout=10m"],
        ["-n", "harsha", "patch", "service", "harsha-pricing", *merge({"selector": {TRACK: "green"}})],
        [
            "-n",
            "harsha",
            "patch",
            "hpa",
            "harsha-pricing",
            *merge({"scaleTargetRef": {"name": "harsha-pricing-green"}}),
        ],
    ]
    # Green serves: a rollback switches back to blue.
    log.write_text("")
    result = blue_green("rollback", "pricing", env={**env, "FAKE_TRACK": "green"})
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c for c in calls if c[2] != "get"] == [
        ["-n", "harsha", "scale", "deployment/harsha-pricing", "--replicas=5"],
        ["-n", "harsha", "rollout", "status", "deployment/harsha-pricing", "--timeout=10m"],
        ["-n", "harsha", "patch", "service", "harsha-pricing", *merge({"selector": {TRACK: "blue"}})],
        ["-n", "harsha", "patch", "hpa", "harsha-pricing", *merge({"scaleTargetRef": {"name": "harsha-pricing"}})],
    ]


def merge(spec: dict) -> list[str]:
    """The arguments of a merge patch of SPEC, as the script writes them."""
    return ["--type", "merge", "-p", json.dumps({"spec": spec}, separators=(",", ":"))]

"""Static checks of the deployment artifacts: Dockerfile, docker compose, Grafana,
Prometheus and the kustomize tree under deploy/k8s.

No Docker engine or cluster is needed: every file is parsed and cross-checked, so a
renamed file, a typo in a subcommand or a patch aimed at a missing Deployment fails
here instead of at `docker compose up` / `kubectl apply`.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from events.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}

SUBCOMMANDS = {"api", "worker", "relay", "consumers", "migrate"}
# The only repo files compose may reference before they exist: generated, ignored keys.
GENERATED_FILE_PATTERN = "deploy/secrets/*.pem"
SEARCH_ATTRIBUTES = {
    "DealStage": "Keyword",
    "CompanyId": "Keyword",
    "SecurityId": "Keyword",
    "DealValue": "Double",
    "BuyerId": "Keyword",
    "SellerId": "Keyword",
    "OrderStatus": "Keyword",
    "Side": "Keyword",
    "KycStatus": "Keyword",
}
TOPICS = set(ALL_TOPICS)
DASHBOARD_METRICS = {
    "pap_http_requests_total",
    "pap_http_request_duration_seconds",
    "pap_activity_duration_seconds",
    "pap_outbox_lag_events",
    "pap_consumer_lag_events",
}


# --- helpers -----------------------------------------------------------------------


@cache
def load_docs(path: Path) -> tuple[Any, ...]:
    """Every non-empty YAML document of a file (multi-document safe)."""
    with path.open(encoding="utf-8") as handle:
        return tuple(doc for doc in yaml.safe_load_all(handle) if doc is not None)


def load_one(path: Path) -> dict[str, Any]:
    docs = load_docs(path)
    assert len(docs) == 1, f"{path} should hold exactly one YAML document"
    doc = docs[0]
    assert isinstance(doc, dict), f"{path} is not a mapping"
    return doc


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def compose() -> dict[str, Any]:
    return load_one(COMPOSE_FILE)


def compose_services() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    assert isinstance(services, dict)
    assert services
    return services


def build_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose_services().items() if "build" in svc}


def command_tokens(command: Any) -> list[str]:
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list), f"unexpected command {command!r}"
    return [str(token) for token in command]


def yaml_files() -> list[Path]:
    files = sorted({*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")})
    return [COMPOSE_FILE, *files]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends with a dangling line continuation"
    result = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def copy_sources(arguments: str) -> list[str] | None:
    """Sources of a COPY from the build context; None for `COPY --from=...`."""
    tokens = shlex.split(arguments)
    flags = [token for token in tokens if token.startswith("--")]
    if any(flag.startswith("--from") for flag in flags):
        return None
    operands = [token for token in tokens if not token.startswith("--")]
    if operands and operands[0].startswith("["):
        operands = json.loads(" ".join(operands))
    assert len(operands) >= 2, f"COPY needs a source and a destination: {arguments}"
    return operands[:-1]


# --- kustomize ---------------------------------------------------------------------


def kustomization_file(directory: Path) -> Path:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise AssertionError(f"{rel(directory)} has no kustomization.yaml")


def kustomization_refs(directory: Path) -> list[Path]:
    """Every file or directory a kustomization points at."""
    spec = load_one(kustomization_file(directory))
    refs: list[str] = []
    for key in ("resources", "bases", "components", "patchesStrategicMerge", "crds"):
        refs.extend(str(item) for item in spec.get(key) or [])
    for patch in spec.get("patches") or []:
        if isinstance(patch, dict) and "path" in patch:
            refs.append(str(patch["path"]))
    for patch in spec.get("patchesJson6902") or []:
        refs.append(str(patch["path"]))
    for generator in (spec.get("configMapGenerator") or []) + (spec.get("secretGenerator") or []):
        for entry in generator.get("files") or []:
            refs.append(str(entry).split("=", 1)[-1])
        for env_file in generator.get("envs") or []:
            refs.append(str(env_file))
    return [(directory / ref).resolve() for ref in refs if "://" not in ref]


def merge(target: Any, patch: Any) -> Any:
    """Strategic-merge-patch lite: maps merge, lists of named maps merge by name."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = merge(target[key], value) if key in target else value
        return merged
    if (
        isinstance(target, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in [*target, *patch])
    ):
        by_name = {item["name"]: item for item in target}
        for item in patch:
            by_name[item["name"]] = merge(by_name.get(item["name"], {}), item)
        return list(by_name.values())
    return patch


class Rendered:
    """A much simplified `kustomize build`: resources (recursively), strategic-merge
    patches, image tags and replicas."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.docs: list[dict[str, Any]] = []
        self.images: dict[str, dict[str, Any]] = {}
        self.replicas: dict[str, int] = {}
        self.patches: list[Path] = []
        self._walk(directory)

    def _walk(self, directory: Path) -> None:
        spec = load_one(kustomization_file(directory))
        for ref in spec.get("resources") or []:
            target = (directory / str(ref)).resolve()
            if target.is_dir():
                self._walk(target)
            else:
                self.docs.extend(doc for doc in load_docs(target) if isinstance(doc, dict))
        # Entries of an overlay override those of the bases it includes.
        for image in spec.get("images") or []:
            self.images[str(image["name"])] = {
                **self.images.get(str(image["name"]), {}),
                **image,
            }
        for replica in spec.get("replicas") or []:
            self.replicas[str(replica["name"])] = int(replica["count"])
        patches = [
            (directory / str(patch["path"])).resolve()
            for patch in spec.get("patches") or []
            if isinstance(patch, dict) and "path" in patch
        ]
        patches += [(directory / str(p)).resolve() for p in spec.get("patchesStrategicMerge") or []]
        for path in patches:
            for patch_doc in load_docs(path):
                key = (patch_doc["kind"], patch_doc["metadata"]["name"])
                for index, doc in enumerate(self.docs):
                    if (doc.get("kind"), doc["metadata"]["name"]) == key:
                        self.docs[index] = merge(doc, patch_doc)
        self.patches.extend(patches)

    def of_kind(self, kind: str) -> dict[str, dict[str, Any]]:
        return {doc["metadata"]["name"]: doc for doc in self.docs if doc.get("kind") == kind}

    def workloads(self) -> dict[str, dict[str, Any]]:
        return {**self.of_kind("Deployment"), **self.of_kind("Job")}

    def final_image(self, image: str) -> tuple[str, str]:
        name, _, tag = image.partition(":")
        override = self.images.get(name, {})
        return str(override.get("newName", name)), str(override.get("digest") or override.get("newTag") or tag)

    def replica_count(self, deployment: str) -> int:
        if deployment in self.replicas:
            return self.replicas[deployment]
        return int(self.of_kind("Deployment")[deployment]["spec"].get("replicas", 1))


@cache
def rendered(directory: Path) -> Rendered:
    return Rendered(directory)


ALL_KUSTOMIZE_ROOTS = {"base": BASE, **OVERLAYS}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    wanted = selector.get("matchLabels") or {}
    return bool(wanted) and all(labels.get(key) == value for key, value in wanted.items())


# --- every YAML file ---------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=rel)
def test_yaml_file_parses(path: Path) -> None:
    assert load_docs(path), f"{rel(path)} holds no YAML document"


def test_grafana_dashboard_json_parses_and_charts_platform_metrics() -> None:
    dashboards = sorted((DEPLOY / "grafana").rglob("*.json"))
    assert dashboards, "no provisioned Grafana dashboard"
    for path in dashboards:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        assert dashboard.get("uid")
        assert dashboard.get("title")
        exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
        missing = {metric for metric in DASHBOARD_METRICS if metric not in exprs}
        assert not missing, f"{rel(path)} charts none of {sorted(missing)}"


def test_grafana_provisioning_points_at_prometheus_and_dashboard_folder() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = [
        source for path in (provisioning / "datasources").glob("*.y*ml") for source in load_one(path)["datasources"]
    ]
    assert any(source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" for source in datasources)
    providers = [
        provider for path in (provisioning / "dashboards").glob("*.y*ml") for provider in load_one(path)["providers"]
    ]
    mounts = [str(volume) for volume in compose_services()["grafana"]["volumes"]]
    for provider in providers:
        folder = provider["options"]["path"]
        assert any(mount.split(":")[1] == folder for mount in mounts), (
            f"dashboard folder {folder} is not mounted into grafana"
        )


def test_prometheus_scrapes_every_platform_process() -> None:
    config = load_one(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {"api:8000", "worker:9464", "relay:9464", "consumers:9464"} <= targets
    assert set(build_services()) - {"migrate"} == {
        "api",
        "worker",
        "relay",
        "consumers",
    }


# --- Dockerfile --------------------------------------------------------------------


def test_dockerfile_copy_sources_exist() -> None:
    copies = [args for keyword, args in dockerfile_instructions() if keyword in ("COPY", "ADD")]
    assert copies, "Dockerfile copies nothing"
    for arguments in copies:
        sources = copy_sources(arguments)
        if sources is None:
            continue
        matched = 0
        for source in sources:
            if any(char in source for char in "*?["):
                matched += len(list(ROOT.glob(source)))
                continue
            assert (ROOT / source).exists(), f"Dockerfile: COPY source {source!r} does not exist"
            matched += 1
        assert matched, f"Dockerfile: `COPY {arguments}` matches no file"


def test_dockerignore_keeps_copy_sources_in_the_context() -> None:
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv", ".pap"} <= set(patterns)
    for keyword, arguments in dockerfile_instructions():
        sources = copy_sources(arguments) if keyword == "COPY" else None
        for source in sources or []:
            name = source.rstrip("/")
            ignored = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(name, p)]
            assert not ignored, f".dockerignore drops COPY source {source!r} ({ignored})"


def test_dockerfile_runtime_stage() -> None:
    instructions = dockerfile_instructions()
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "the Dockerfile should be multi-stage"
    args = {
        match.group(1): match.group(2)
        for keyword, arguments in instructions
        if keyword == "ARG" and (match := re.fullmatch(r"(\w+)=(\S+)", arguments))
    }
    final_image = stages[-1].split()[0]
    final_image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), final_image)
    assert final_image == "python:3.11-slim"
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    by_keyword: dict[str, list[str]] = {}
    for keyword, arguments in final:
        by_keyword.setdefault(keyword, []).append(arguments)
    assert json.loads(by_keyword["ENTRYPOINT"][-1]) == ["pap"]
    assert json.loads(by_keyword["CMD"][-1]) == ["api"]
    assert by_keyword["USER"][-1].split(":")[0] in ("10001", "pap")
    assert any("10001" in run for run in by_keyword["RUN"]), "user pap must have uid 10001"
    assert "8000" in " ".join(by_keyword["EXPOSE"]).split()
    healthcheck = by_keyword["HEALTHCHECK"][-1]
    assert "urllib" in healthcheck
    assert "http://127.0.0.1:8000/health/live" in healthcheck
    builder = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "pip install ." in builder


# --- docker compose ----------------------------------------------------------------


def test_compose_services_have_an_image_or_a_buildable_context() -> None:
    for name, service in compose_services().items():
        build = service.get("build")
        assert build is not None or service.get("image"), f"{name}: neither image nor build"
        if build is None:
            continue
        spec = {"context": build} if isinstance(build, str) else dict(build)
        context = (ROOT / str(spec.get("context", "."))).resolve()
        assert context.is_dir(), f"{name}: build context {context} missing"
        dockerfile = context / str(spec.get("dockerfile", "Dockerfile"))
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"


def test_compose_built_services_run_a_pap_subcommand() -> None:
    services = build_services()
    assert set(services) == SUBCOMMANDS
    for name, service in services.items():
        tokens = command_tokens(service.get("command", ["api"]))
        assert tokens, f"{name}: no command"
        assert tokens[0] in SUBCOMMANDS, f"{name}: command {tokens} is not pap's"
        assert tokens[0] == name
        assert service.get("image") == "pap:local"


def test_compose_platform_services_share_env_and_wait_for_migrations() -> None:
    services = build_services()
    envs = [service["environment"] for service in services.values()]
    assert all(env == envs[0] for env in envs), "platform services should share one env anchor"
    env = envs[0]
    assert env["PAP_ENV"] == "production"
    assert env["PAP_DATABASE_URL"] == "postgresql+asyncpg://pap:pap@postgres:5432/pap"
    assert env["PAP_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["PAP_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["PAP_JWT_PRIVATE_KEY_FILE"] == "/run/secrets/jwt_private_key"
    assert ":?" in env["PAP_PAYMENTS_WEBHOOK_SECRET"], "webhook secret must come from the host"
    all_services = compose_services()
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in all_services, f"{name} depends on unknown service {target}"
            if name != "migrate":
                assert rule["condition"] in (
                    "service_healthy",
                    "service_completed_successfully",
                ), f"{name} -> {target}: {rule}"
        if name != "migrate":
            assert depends["migrate"]["condition"] == "service_completed_successfully"
            assert depends["postgres"]["condition"] == "service_healthy"


def test_compose_depends_on_services_with_healthchecks() -> None:
    services = compose_services()
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        names = depends if isinstance(depends, list) else list(depends)
        for target in names:
            assert target in services, f"{name} depends on unknown service {target}"
            rule = depends[target] if isinstance(depends, dict) else {}
            if rule.get("condition") == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"


def test_compose_repo_files_exist() -> None:
    config = compose()
    missing: list[str] = []
    for name, service in config["services"].items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                source = str(volume.get("source", "")) if volume.get("type") == "bind" else ""
            else:
                source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")) and not (ROOT / source).exists():
                missing.append(f"{name}: {source}")
        for secret in service.get("secrets") or []:
            secret_name = secret if isinstance(secret, str) else secret["source"]
            assert secret_name in (config.get("secrets") or {}), f"{name}: {secret_name}?"
    for kind in ("secrets", "configs"):
        for name, entry in (config.get(kind) or {}).items():
            if "file" not in entry:
                continue
            path = (ROOT / str(entry["file"])).resolve()
            if path.exists():
                continue
            if kind == "secrets" and fnmatch.fnmatch(rel(path), GENERATED_FILE_PATTERN):
                continue  # made by openssl, git-ignored (deploy/secrets/.gitignore)
            missing.append(f"{kind}.{name}: {entry['file']}")
    assert not missing, f"compose references missing repo files: {missing}"
    ignore = (DEPLOY / "secrets" / ".gitignore").read_text(encoding="utf-8").split()
    assert "*.pem" in ignore, "generated keys must be git-ignored"


def test_compose_kafka_runs_kraft_single_node() -> None:
    kafka = compose_services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    assert "CONTROLLER" in env["KAFKA_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_search_attributes_are_registered_everywhere() -> None:
    setup = " ".join(command_tokens(compose_services()["temporal-setup"]["command"]))
    job = (K8S / "extras" / "temporal-search-attributes-job.yaml").read_text(encoding="utf-8")
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    assert "temporal operator search-attribute create" in setup
    for text in (setup, job, readme):
        for name, kind in SEARCH_ATTRIBUTES.items():
            assert f"{name}:{kind}" in text


def test_kafka_topics_are_declared_for_compose_and_strimzi() -> None:
    declared = {
        doc["metadata"]["name"]
        for doc in load_docs(K8S / "extras" / "kafka-topics.yaml")
        if doc["kind"] == "KafkaTopic"
    }
    assert declared == TOPICS
    init = " ".join(command_tokens(compose_services()["kafka-init"]["command"]))
    assert set(re.findall(r"\bpap\.[a-z]+\b", init)) == TOPICS


# --- kustomize ---------------------------------------------------------------------


def test_every_kustomization_references_existing_files() -> None:
    kustomizations = sorted(K8S.rglob("kustomization.yaml"))
    assert {path.parent for path in kustomizations} == set(ALL_KUSTOMIZE_ROOTS.values())
    seen: set[Path] = set()
    pending = [path.parent for path in kustomizations]
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        for ref in kustomization_refs(directory):
            assert ref.exists(), f"{rel(directory)}: {ref} does not exist"
            if ref.is_dir():
                kustomization_file(ref)
                pending.append(ref)


def test_example_secret_and_extras_are_not_applied() -> None:
    for directory in ALL_KUSTOMIZE_ROOTS.values():
        build = rendered(directory)
        assert not build.of_kind("Secret"), f"{rel(directory)} must not ship Secrets"
        referenced = {ref.name for ref in kustomization_refs(directory)}
        assert "secret.example.yaml" not in referenced
    assert (BASE / "secret.example.yaml").is_file()


@pytest.mark.parametrize("name", sorted(ALL_KUSTOMIZE_ROOTS))
def test_workloads_run_the_pap_image_with_a_subcommand(name: str) -> None:
    build = rendered(ALL_KUSTOMIZE_ROOTS[name])
    workloads = build.workloads()
    assert set(build.of_kind("Deployment")) == {
        "pap-api",
        "pap-worker",
        "pap-relay",
        "pap-consumers",
    }
    assert "pap-migrate" in build.of_kind("Job")
    for workload_name, workload in workloads.items():
        for container in pod_spec(workload)["containers"]:
            image_name, tag = build.final_image(str(container["image"]))
            assert image_name == "pap" or image_name.endswith("/pap"), workload_name
            assert tag, f"{workload_name}: image tag missing"
            assert tag != "latest", f"{workload_name}: image tag not pinned"
            args = command_tokens(container.get("args") or container.get("command"))
            assert args[0] in SUBCOMMANDS, f"{workload_name}: {args}"
            assert workload_name == f"pap-{args[0]}"


@pytest.mark.parametrize("name", sorted(ALL_KUSTOMIZE_ROOTS))
def test_workloads_have_probes_resources_and_hardening(name: str) -> None:
    build = rendered(ALL_KUSTOMIZE_ROOTS[name])
    assert "pap-config" in build.of_kind("ConfigMap")
    for workload_name, workload in build.workloads().items():
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        tmp_volumes = {vol["name"] for vol in spec["volumes"] if "emptyDir" in vol}
        for container in spec["containers"]:
            resources = container["resources"]
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[section]), f"{workload_name}: {section}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["runAsNonRoot"] is True
            assert any(
                mount["mountPath"] == "/tmp" and mount["name"] in tmp_volumes for mount in container["volumeMounts"]
            ), f"{workload_name}: /tmp must be an emptyDir"
            sources = [
                (source.get("configMapRef") or {}).get("name") or (source.get("secretRef") or {}).get("name")
                for source in container["envFrom"]
            ]
            assert sources == ["pap-config", "pap-secrets"], f"{workload_name}: {sources}"
            if workload["kind"] != "Deployment":
                continue
            assert "livenessProbe" in container, f"{workload_name}: no liveness probe"
            if workload_name == "pap-api":
                assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
                assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
            else:
                probe = container["livenessProbe"]["httpGet"]
                ports = {port["name"]: port["containerPort"] for port in container["ports"]}
                assert probe["path"] == "/metrics"
                assert ports.get(probe["port"], probe["port"]) == 9464


@pytest.mark.parametrize("name", sorted(ALL_KUSTOMIZE_ROOTS))
def test_hpa_pdb_and_services_target_existing_deployments(name: str) -> None:
    build = rendered(ALL_KUSTOMIZE_ROOTS[name])
    base_deployments = rendered(BASE).of_kind("Deployment")
    hpas = build.of_kind("HorizontalPodAutoscaler")
    assert set(hpas) == {"pap-api", "pap-worker"}
    for hpa in hpas.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] in base_deployments
        cpu = [m for m in hpa["spec"]["metrics"] if m["resource"]["name"] == "cpu"]
        assert cpu[0]["resource"]["target"]["averageUtilization"] == 70
        assert hpa["spec"]["minReplicas"] <= build.replica_count(target["name"])
    pdbs = build.of_kind("PodDisruptionBudget")
    assert set(pdbs) == {"pap-api", "pap-worker"}
    template_labels = {
        dep_name: dep["spec"]["template"]["metadata"]["labels"] for dep_name, dep in base_deployments.items()
    }
    for pdb_name, pdb in pdbs.items():
        assert pdb["spec"]["minAvailable"] == 1
        assert selector_matches(pdb["spec"]["selector"], template_labels[pdb_name])
    for service_name, service in build.of_kind("Service").items():
        selector = {"matchLabels": service["spec"]["selector"]}
        assert any(selector_matches(selector, labels) for labels in template_labels.values()), (
            f"service {service_name} selects no pod"
        )
    for deployment in build.of_kind("Deployment").values():
        selector = deployment["spec"]["selector"]
        assert selector_matches(selector, deployment["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("name", sorted(OVERLAYS))
def test_overlay_patches_target_base_resources(name: str) -> None:
    build = rendered(OVERLAYS[name])
    known = {(doc["kind"], doc["metadata"]["name"]) for doc in build.docs}
    assert build.patches
    for patch in build.patches:
        for doc in load_docs(patch):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key in known, f"{rel(patch)} patches missing {key}"
    for deployment in build.replicas:
        assert deployment in build.of_kind("Deployment"), f"replicas for unknown {deployment}"


def test_overlays_set_replicas_and_image_tags() -> None:
    dev, prod = rendered(OVERLAYS["dev"]), rendered(OVERLAYS["prod"])
    for deployment in dev.of_kind("Deployment"):
        assert dev.replica_count(deployment) == 1
    assert prod.replica_count("pap-api") == 3
    assert prod.replica_count("pap-worker") == 3
    assert dev.final_image("pap")[1] == "dev"
    assert re.fullmatch(r"\d+\.\d+\.\d+|sha256:[0-9a-f]{64}", prod.final_image("pap")[1])
    for build in (rendered(BASE), dev, prod):
        # The relay holds a Postgres advisory lock: one active replica, no HPA.
        assert build.replica_count("pap-relay") == 1


def test_network_policies_deny_by_default_and_admit_api_and_scrapes() -> None:
    policies = rendered(BASE).of_kind("NetworkPolicy")
    deny = [p for p in policies.values() if p["spec"]["podSelector"] == {}]
    assert deny
    assert all("ingress" not in p["spec"] for p in deny)
    api_ports = {
        port["port"]
        for policy in policies.values()
        if policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == "api"
        for rule in policy["spec"].get("ingress", [])
        for port in rule.get("ports", [])
    }
    assert 8000 in api_ports
    scrape = [
        rule
        for policy in policies.values()
        for rule in policy["spec"].get("ingress", [])
        if any(
            (peer.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            == "monitoring"
            for peer in rule.get("from", [])
        )
    ]
    assert scrape
    assert {9464, 8000} <= {port["port"] for port in scrape[0]["ports"]}


def test_configmap_points_at_in_cluster_services() -> None:
    data = rendered(BASE).of_kind("ConfigMap")["pap-config"]["data"]
    assert data["PAP_TEMPORAL_ADDRESS"] == "temporal-frontend.temporal:7233"
    assert data["PAP_KAFKA_BOOTSTRAP"] == "pap-kafka-kafka-bootstrap.kafka:9092"
    assert "pap-postgres-rw.pap:5432" in data["PAP_DATABASE_URL"]
    assert data["PAP_METRICS_PORT"] == "9464"
    assert all(key.startswith("PAP_") for key in data)
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values are strings"

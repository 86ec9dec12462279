#!/usr/bin/env python3
"""Renders every kustomize overlay under deploy/kustomize/overlays and checks the result.

For each overlay: `kubectl kustomize` must render it; every object must validate against
the Kubernetes schemas (offline, with the `kubernetes-validate` package, strict: unknown
fields are errors); and the deployment's own rules must hold — probes and resource limits
on every container, nothing running as root, read-only root file systems, a
PodDisruptionBudget for every workload, NATS reachable only as intended, JetStream's file
store limit below its volume, no Service exposed outside the cluster, the Ingress routing
exactly the gRPC services that proto/ declares, and in prod three NATS nodes and three
stream replicas.

`--self-test` breaks a rendered overlay in each way the rules forbid and fails unless every
break is reported, so the checks themselves are known to bite.
"""

import copy
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.30.0"
OVERLAYS = Path(__file__).resolve().parent / "kustomize" / "overlays"
PROTO = Path(__file__).resolve().parent.parent / "proto"
# gRPC services of proto/ that are deliberately not reachable through the Ingress.
NOT_EXPOSED: set = set()
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


def render(overlay: Path) -> list:
    result = subprocess.run(
        ["kubectl", "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"{overlay.name}: kubectl kustomize failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def schema_problems(docs: list) -> list:
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{name(doc)}: {e.message} at {'/'.join(map(str, e.path))}")
        except Exception as e:  # an unknown kind or version
            problems.append(f"{name(doc)}: {e}")
    return problems


def name(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def env_of(container: dict, configmaps: dict) -> dict:
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        env.update(configmaps.get(ref, {}))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
    return env


UNITS = {
    "": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
    "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4,
}


def kube_bytes(quantity: str) -> int:
    """A Kubernetes quantity (`20Gi`, `500M`) in bytes."""
    number = quantity.rstrip("KMGTkmgti")
    return int(float(number) * UNITS[quantity[len(number):].lower()])


def nats_bytes(size: str) -> int:
    """A NATS config size (`16GB`, `512MB`; NATS counts them in powers of 1024) in bytes."""
    number = size.rstrip("KMGTBkmgtb")
    suffix = size[len(number):].lower().rstrip("b")
    return int(float(number) * UNITS[suffix + "i" if suffix else ""])


def nats_store_problems(nats: dict) -> list:
    """JetStream's file store limit must fit on the node's data volume."""
    container = next(c for c in nats["spec"]["template"]["spec"]["containers"] if c["name"] == "nats")
    limit = {v["name"]: v.get("value") for v in container.get("env", [])}.get("NATS_MAX_FILE_STORE")
    volume = next(
        (t for t in nats["spec"].get("volumeClaimTemplates", []) if t["metadata"]["name"] == "data"),
        None,
    )
    if volume is None:
        return ["NATS has no data volume (volumeClaimTemplate `data`)"]
    size = volume["spec"]["resources"]["requests"]["storage"]
    if not limit:
        return ["NATS container sets no NATS_MAX_FILE_STORE"]
    if nats_bytes(limit) >= kube_bytes(size):
        return [f"NATS_MAX_FILE_STORE {limit} is not below its data volume ({size})"]
    return []


def grpc_services() -> set:
    """Every gRPC service the .proto files declare, as `/<package>.<Service>`."""
    services = set()
    for proto in PROTO.rglob("*.proto"):
        text = proto.read_text()
        package = re.search(r"^package\s+([\w.]+)\s*;", text, re.M)
        for service in re.findall(r"^service\s+(\w+)", text, re.M):
            services.add(f"/{package.group(1)}.{service}" if package else f"/{service}")
    return services - NOT_EXPOSED


def ingress_problems(docs: list) -> list:
    """The API Ingress routes exactly the gRPC services of proto/, each to a Service here."""
    ingresses = [d for d in docs if d["kind"] == "Ingress"]
    if len(ingresses) != 1:
        return [f"{len(ingresses)} Ingresses, expected one (backtrack-api)"]
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    routed = {}
    for rule in ingresses[0]["spec"].get("rules", []):
        for path in rule.get("http", {}).get("paths", []):
            routed[path["path"]] = path["backend"]["service"]["name"]
    problems = [f"Ingress does not route gRPC service {p}" for p in sorted(grpc_services() - set(routed))]
    problems += [f"Ingress routes {p}, which no .proto declares" for p in sorted(set(routed) - grpc_services())]
    problems += [f"Ingress routes {p} to {s}, which is not a Service here" for p, s in routed.items() if s not in services]
    return problems


def directory_server_problems(where: str, env: dict, docs: list) -> list:
    """`serve recovery` applies its batches through the directory service: its address
    must name the directory's Service and gRPC port."""
    address = env.get("BACKTRACK_DIRECTORY_SERVER")
    if not address:
        return [f"{where}: BACKTRACK_DIRECTORY_SERVER is not set"]
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.partition(":")
    host = host.split(".", 1)[0]
    for s in (d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == host):
        selector = s["spec"].get("selector", {})
        if selector.get("app.kubernetes.io/name") != "backtrack-directory":
            break
        if any(str(p["port"]) == port and p.get("name") == "grpc" for p in s["spec"]["ports"]):
            return []
    return [f"{where}: BACKTRACK_DIRECTORY_SERVER {address} does not name the directory Service's gRPC port"]


def rule_problems(docs: list, overlay: str) -> list:
    problems = []
    configmaps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        selected = any(
            all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())
            for p in pdbs
        )
        if not selected:
            problems.append(f"{name(w)}: no PodDisruptionBudget selects it")
        for c in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name(w)} container {c['name']}"
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.append(f"{where}: no {probe}")
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                if not resources.get(part):
                    problems.append(f"{where}: no resource {part}")
            security = c.get("securityContext", {})
            non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
            user = security.get("runAsUser", pod_security.get("runAsUser"))
            if non_root is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if user is None or user == 0:
                problems.append(f"{where}: runs as root (runAsUser {user})")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root file system is writable")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation is allowed")
            if security.get("privileged"):
                problems.append(f"{where}: privileged")
            if c.get("args", [])[:2] == ["serve", "recovery"]:
                problems += directory_server_problems(where, env_of(c, configmaps), docs)
            if c.get("args", [])[:1] == ["serve"] and overlay == "prod":
                replicas = env_of(c, configmaps).get("BACKTRACK_STREAM_REPLICAS")
                if replicas != "3":
                    problems.append(f"{where}: BACKTRACK_STREAM_REPLICAS is {replicas}, not 3")
    nats = [w for w in workloads if w["metadata"]["name"] == "nats"]
    if len(nats) != 1 or nats[0]["kind"] != "StatefulSet":
        problems.append("no NATS StatefulSet")
    else:
        if overlay == "prod" and nats[0]["spec"].get("replicas") != 3:
            problems.append(f"NATS runs {nats[0]['spec'].get('replicas')} replicas in prod, not 3")
        problems += nats_store_problems(nats[0])
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    guards_nats = any(
        p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "nats"
        and any(
            port.get("port") == 4222 and rule.get("from")
            for rule in p["spec"].get("ingress", [])
            for port in rule.get("ports", [])
        )
        for p in policies
    )
    if not guards_nats:
        problems.append("no NetworkPolicy limits who reaches NATS on 4222")
    if not any(p["spec"]["podSelector"] in ({}, {"matchLabels": {"app.kubernetes.io/part-of": "backtrack"}}) and "ingress" not in p["spec"] for p in policies):
        problems.append("no default-deny NetworkPolicy")
    for s in (d for d in docs if d["kind"] == "Service"):
        if s["spec"].get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"{name(s)}: type {s['spec']['type']} exposes it outside the cluster")
    problems += ingress_problems(docs)
    return problems


def check(overlay: Path) -> list:
    docs = render(overlay)
    problems = schema_problems(docs) + rule_problems(docs, overlay.name)
    kinds = {}
    for d in docs:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"{overlay.name}: {len(docs)} objects ({summary})")
    return problems


def self_test() -> None:
    """Each break must be reported; a checker that reports nothing proves nothing."""
    docs = render(OVERLAYS / "prod")
    baseline = schema_problems(docs) + rule_problems(docs, "prod")
    if baseline:
        sys.exit("deploy check self-test needs a passing prod overlay; it has:\n" + "\n".join(baseline))

    def workload(d, wanted="backtrack-directory"):
        return next(x for x in d if x["kind"] in WORKLOADS and x["metadata"]["name"] == wanted)

    def container(d, wanted="backtrack-directory"):
        return workload(d, wanted)["spec"]["template"]["spec"]["containers"][0]

    breaks = {
        "runs as root": lambda d: container(d)["securityContext"].update(runAsUser=0),
        "no livenessProbe": lambda d: container(d).pop("livenessProbe"),
        "no readinessProbe": lambda d: container(d, "nats").pop("readinessProbe"),
        "root file system is writable": lambda d: container(d)["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
        "not 3": lambda d: next(x for x in d if x["kind"] == "ConfigMap" and x["metadata"]["name"] == "backtrack-config")["data"].update(BACKTRACK_STREAM_REPLICAS="1"),
        "NATS runs 1 replicas": lambda d: workload(d, "nats")["spec"].update(replicas=1),
        "no PodDisruptionBudget": lambda d: d.remove(next(x for x in d if x["kind"] == "PodDisruptionBudget" and x["metadata"]["name"] == "backtrack-audit")),
        "exposes it outside": lambda d: next(x for x in d if x["kind"] == "Service")["spec"].update(type="LoadBalancer"),
        "no resource limits": lambda d: container(d)["resources"].pop("limits"),
        "Additional properties": lambda d: container(d).update(probez={}),
        "privilege escalation is allowed": lambda d: container(d, "nats")["securityContext"].update(
            allowPrivilegeEscalation=True
        ),
        "runAsNonRoot is not true": lambda d: (
            workload(d, "backtrack-recovery")["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"),
            container(d, "backtrack-recovery")["securityContext"].pop("runAsNonRoot"),
        ),
        "limits who reaches NATS on 4222": lambda d: d.remove(next(x for x in d if x["kind"] == "NetworkPolicy" and x["metadata"]["name"] == "nats")),
        "no default-deny": lambda d: d.remove(next(x for x in d if x["kind"] == "NetworkPolicy" and x["metadata"]["name"] == "default-deny-ingress")),
        "does not route gRPC service /backtrack.v1.AuditService": lambda d: next(
            x for x in d if x["kind"] == "Ingress"
        )["spec"]["rules"][0]["http"]["paths"].pop(),
        "not a Service here": lambda d: next(x for x in d if x["kind"] == "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(name="backtrack-nowhere"),
        "does not name the directory Service's gRPC port": lambda d: next(
            v for v in container(d, "backtrack-recovery")["env"] if v["name"] == "BACKTRACK_DIRECTORY_SERVER"
        ).update(value="http://backtrack-directory:8080"),
        "not below its data volume": lambda d: next(
            v for v in container(d, "nats")["env"] if v["name"] == "NATS_MAX_FILE_STORE"
        ).update(value="250GB"),
    }
    missed = []
    for expected, breaking in breaks.items():
        broken = copy.deepcopy(docs)
        breaking(broken)
        reported = schema_problems(broken) + rule_problems(broken, "prod")
        if not any(expected in p for p in reported):
            missed.append(f"{expected!r} not reported (got {reported})")
    if missed:
        sys.exit("deploy check self-test failed:\n" + "\n".join(missed))
    print(f"self-test: all {len(breaks)} deliberate breaks were reported")


def main() -> None:
    if "--self-test" in sys.argv:
        self_test()
        return
    overlays = sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())
    if not overlays:
        sys.exit(f"no overlays under {OVERLAYS}")
    failures = []
    for overlay in overlays:
        failures += [f"{overlay.name}: {p}" for p in check(overlay)]
    if failures:
        sys.exit("deploy check failed:\n" + "\n".join(failures))
    print(f"deploy check passed: {', '.join(o.name for o in overlays)}")


if __name__ == "__main__":
    main()

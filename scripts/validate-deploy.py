#!/usr/bin/env python3
"""Validates the Kubernetes manifests in deploy/*.yaml.

1. Each document against the Kubernetes OpenAPI schemas that kubernetes-validate bundles (strict:
   an unknown field is an error), for the oldest and the newest Kubernetes version below. No
   network is used.
2. What the schemas cannot know, bpfbox's own rules for its DaemonSet (docs/deploy.md): hostPID;
   no privileged container and no CAP_SYS_ADMIN, capabilities dropped and only known ones added,
   each container with CAP_BPF and CAP_PERFMON; every volume mount names a volume; the host's /run
   and /sys/fs/cgroup read-only; the Prometheus annotations match a container port named metrics;
   the skbcount and execsnoop containers run what docs/deploy.md says.

Exit status: 0 valid, 1 invalid (one line per problem on stderr), 77 kubernetes-validate or PyYAML
is not installed (pip install kubernetes-validate).
Usage: scripts/validate-deploy.py [FILE.yaml ...]   (default deploy/*.yaml)
"""
import glob
import os
import sys

try:
    import yaml
    import kubernetes_validate
except ImportError as error:
    print(f"validate-deploy: {error.name} is not installed; pip install kubernetes-validate", file=sys.stderr)
    sys.exit(77)

KUBERNETES_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
ALLOWED_CAPABILITIES = {"BPF", "PERFMON", "NET_ADMIN", "SYS_RESOURCE", "SYS_PTRACE"}
EXPECTED_COMMANDS = {
    "skbcount": ["skbcount", "--metrics", "0.0.0.0:9464", "--quiet"],
    "execsnoop": ["execsnoop", "--json", "--containers"],
}
READ_ONLY_HOST_PATHS = {"/run", "/sys/fs/cgroup"}


def schema_problems(document, name):
    problems = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(item) for item in error.path)
            problems.append(f"{name}: Kubernetes {error.version}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name}: no schema for {document.get('apiVersion')} {document.get('kind')} in Kubernetes {version}: {error.message}")
    return problems


def daemonset_problems(daemonset, name):
    problems = []
    pod = daemonset["spec"]["template"]
    spec = pod["spec"]
    annotations = pod["metadata"].get("annotations", {})
    if spec.get("hostPID") is not True:
        problems.append(f"{name}: hostPID must be true (bpfbox reads /proc/PID of the host's processes)")
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    ports = {}
    for container in spec["containers"]:
        where = f"{name}: container {container['name']}"
        context = container.get("securityContext", {})
        if context.get("privileged"):
            problems.append(f"{where}: privileged; add the capabilities it needs instead")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{where}: capabilities.drop must be [ALL], then add what is needed")
        added = set(capabilities.get("add", []))
        if not {"BPF", "PERFMON"} <= added:
            problems.append(f"{where}: needs CAP_BPF and CAP_PERFMON")
        for extra in sorted(added - ALLOWED_CAPABILITIES):
            problems.append(f"{where}: capability {extra} is not one that docs/deploy.md explains")
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None:
                problems.append(f"{where}: mounts volume {mount['name']}, which the pod does not define")
                continue
            host = volume.get("hostPath", {}).get("path")
            if host in READ_ONLY_HOST_PATHS and not mount.get("readOnly"):
                problems.append(f"{where}: the host's {host} must be mounted readOnly")
        for port in container.get("ports", []):
            ports[port.get("name")] = port["containerPort"]
        command = container.get("command", [])
        expected = EXPECTED_COMMANDS.get(container["name"])
        if expected is not None and command[1:] != expected:
            problems.append(f"{where}: runs {command}, expected bpfbox {' '.join(expected)}")
    if annotations.get("prometheus.io/scrape") != "true":
        problems.append(f"{name}: annotation prometheus.io/scrape must be \"true\"")
    if annotations.get("prometheus.io/path") != "/metrics":
        problems.append(f"{name}: annotation prometheus.io/path must be /metrics")
    if "metrics" not in ports or annotations.get("prometheus.io/port") != str(ports["metrics"]):
        problems.append(f"{name}: annotation prometheus.io/port must be the containerPort named metrics ({ports.get('metrics')})")
    return problems


def main(arguments):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = arguments or sorted(glob.glob(os.path.join(root, "deploy", "*.yaml")))
    if not files:
        print("validate-deploy: no deploy/*.yaml to validate", file=sys.stderr)
        return 1
    problems = []
    daemonsets = 0
    for path in files:
        with open(path) as file:
            documents = [document for document in yaml.safe_load_all(file) if document]
        for document in documents:
            name = f"{os.path.relpath(path, root)}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
            problems += schema_problems(document, name)
            if document.get("kind") == "DaemonSet":
                daemonsets += 1
                problems += daemonset_problems(document, name)
        print(f"validate-deploy: {os.path.relpath(path, root)}: {len(documents)} documents checked against Kubernetes {', '.join(KUBERNETES_VERSIONS)}")
    if daemonsets == 0:
        problems.append("no DaemonSet in " + " ".join(files))
    for problem in problems:
        print("validate-deploy: " + problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

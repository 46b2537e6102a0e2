#!/usr/bin/env bash
# Tests of the Helm chart helm/gloss, without a cluster, a helm binary or any network beyond PyPI:
#  - helm-python-sdk binds Helm's own Go SDK (v4), shipped in its wheel as libhelm_c.so, with
#    ctypes: lint, values.schema.json and rendering are Helm's code, offline (`lookup` is empty);
#  - kubernetes-validate checks every rendered object, strictly (unknown fields fail), against
#    the OpenAPI schemas of the newest Kubernetes it ships and of the oldest the chart supports;
#  - then the facts that matter are checked on the rendered objects (replicas, --initial-members,
#    probes, GPU requests only where asked, security settings...), the coordinators' start-up
#    wrapper is run under /bin/sh with a stub `gloss`, and bad values must be refused.
# Prints "ok/FAIL NAME" per check and "N passed, N failed"; exits 1 on any failure.
# Idempotent, runs from any directory; .ci/run calls it.
set -euo pipefail
HELM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"

# Install the two PyPI packages only when missing (quietly).
need() {  # need MODULE REQUIREMENT
  if ! "$PY" -c "import $1" >/dev/null 2>&1; then
    echo "installing $2 from PyPI"
    "$PY" -m pip install -q --disable-pip-version-check "$2"
  fi
}
need helm_python 'helm-python-sdk>=0.2.2,<0.3'
need kubernetes_validate 'kubernetes-validate>=1.33'
need yaml pyyaml

exec "$PY" - "$HELM_DIR" <<'PYTHON'
import base64
import copy
import os
import subprocess
import sys
import tempfile
import time

import helm_python as helm
import kubernetes_validate as kv
import yaml

started = time.monotonic()
HELM_DIR = sys.argv[1]
CHART = os.path.join(HELM_DIR, "gloss")
# Newest schema the validator ships, and the oldest Kubernetes the chart declares (kubeVersion).
K8S_LATEST = kv.latest_version()
K8S_OLDEST = "1.27.0"
RELEASE, NAMESPACE = "gloss", "gloss"

passed = failed = 0


def ok(name):
    global passed
    passed += 1
    print(f"ok   {name}")


def fail(name, why):
    global failed
    failed += 1
    print(f"FAIL {name}: {why}")


def check(name, cond, why=""):
    if cond:
        ok(name)
    else:
        fail(name, why or "condition is false")


def load_values(file):
    with open(os.path.join(HELM_DIR, file)) as f:
        return yaml.safe_load(f) or {}


def render(values, release=RELEASE, namespace=NAMESPACE):
    """Renders like `helm install` would: schema first, then the templates. Returns
    (objects, notes)."""
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        out = chart.render(values, name=release, namespace=namespace, is_install=True)
    objects, notes = [], ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template"] = path
                objects.append(doc)
    return objects, notes


def find(objects, kind, name=None):
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects, kind, name):
    found = find(objects, kind, name)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}/{name}, found {len(found)}")
    return found[0]


def container(obj):
    return obj["spec"]["template"]["spec"]["containers"][0]


def flag(args, name):
    """Value of --name=VALUE in a container's args (None when absent)."""
    for a in args:
        if isinstance(a, str) and a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def members(n, ns=NAMESPACE, full="gloss"):
    return ",".join(
        f"{i + 1}={full}-coordinator-{i}.{full}-coordinator-peers.{ns}.svc.cluster.local:7071"
        for i in range(n)
    )


def run_wrapper(sts, hostname):
    """Runs the coordinator's start-up wrapper under /bin/sh with a stub `gloss` that prints
    its arguments; returns them."""
    c = container(sts)
    script, argv = c["args"][0], c["args"][1:]
    with tempfile.TemporaryDirectory() as d:
        stub = os.path.join(d, "gloss")
        with open(stub, "w") as f:
            f.write('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
        os.chmod(stub, 0o755)
        env = {"PATH": f"{d}:/usr/bin:/bin", "HOSTNAME": hostname}
        out = subprocess.run(c["command"][:1] + ["-c", script] + argv, env=env,
                             capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[:-1]


# ---------------------------------------------------------------------------------------------
print(f"helm-python-sdk {helm.__version__} (libhelm_c {helm.helm_c_version()}, "
      f"Helm SDK {helm.helm_sdk_version()}); kubernetes-validate {kv.version.__version__ if hasattr(kv.version, '__version__') else ''}"
      f" schemas {K8S_OLDEST} and {K8S_LATEST}")

SETS = {
    "default": {},
    "single": load_values("values-single.yaml"),
    "gpu": load_values("values-gpu.yaml"),
    "tls-ingress": load_values("values-tls-ingress.yaml"),
    "tls-inline": {"tls": {"enabled": True, "ca": "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
                           "cert": "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n",
                           "key": "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"},
                   "metrics": {"podAnnotations": True}},
    "grow-3-to-5": {"coordinators": {"replicas": 5, "founders": 3}},
    "replace-node-3": {"coordinators": {"founders": 2}},
    "no-workers": {"workers": {"enabled": False}, "auth": {"existingSecret": "my-tokens"},
                   "serviceAccount": {"create": False}},
    "sso": {"sso": {"enabled": True, "issuer": "https://sso.example.com/realms/acme",
                    "clientId": "gloss", "cliClientId": "gloss-cli",
                    "redirectUrl": "https://gloss.example.com/auth/oidc/callback",
                    "scopes": ["openid", "profile", "groups"],
                    "roles": {"gloss-admins": ["admin"], "acme \"qa\"": ["acme:reviewer", "annotator"]},
                    "clientSecretSecret": "gloss-sso", "caSecret": "acme-ca"}},
}

rendered = {}
for name, values in SETS.items():
    # Lint: Helm's linter, strict (warnings fail too), against the newest Kubernetes.
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{K8S_LATEST}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]
    check(f"{name}: helm lint --strict", not problems, "; ".join(m["error"] for m in problems))
    try:
        rendered[name] = render(values)
        ok(f"{name}: schema and render")
    except helm.HelmError as e:
        fail(f"{name}: schema and render", e)
        continue
    # Every object against the Kubernetes schemas, strictly.
    skipped = set()
    for version in (K8S_LATEST, K8S_OLDEST):
        bad = []
        for obj in rendered[name][0]:
            doc = {k: v for k, v in obj.items() if k != "__template"}
            try:
                kv.validate(doc, version, strict=True)
            except kv.SchemaNotFoundError:
                if obj["apiVersion"].startswith("monitoring.coreos.com/"):
                    skipped.add(f"{obj['kind']} {obj['apiVersion']}")
                else:
                    bad.append(f"{obj['kind']}/{obj['metadata']['name']}: no schema for {obj['apiVersion']}")
            except kv.ValidationError as e:
                bad.append(f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {list(e.path)}")
        count = len(rendered[name][0])
        check(f"{name}: {count} objects valid for Kubernetes {version} (strict)", not bad, "; ".join(bad))
    for s in sorted(skipped):
        print(f"     skipped {s}: a CRD the validator has no schema for (checked by the facts below)")

# ---------------------------------------------------------------------------------------------
def facts(name, fn):
    if name not in rendered:
        fail(f"{name}: facts", "not rendered")
        return
    try:
        fn(*rendered[name])
        ok(f"{name}: facts")
    except AssertionError as e:
        fail(f"{name}: facts", e)


def common(objs):
    """Security defaults and token handling every set must keep."""
    for o in find(objs, "StatefulSet") + find(objs, "Deployment"):
        pod = o["spec"]["template"]["spec"]
        n = o["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, f"{n}: service account token mounted"
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault", f"{n}: pod security"
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, f"{n}: writable root filesystem"
            assert sc["capabilities"]["drop"] == ["ALL"], f"{n}: capabilities not dropped"
            assert sc["allowPrivilegeEscalation"] is False, f"{n}: privilege escalation"
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", f"{n}: seccomp"
    for sa in find(objs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False, "service account automounts its token"


def coordinator_basics(objs, replicas, full="gloss", ns=NAMESPACE, founders=None):
    sts = one(objs, "StatefulSet", f"{full}-coordinator")
    assert sts["spec"]["replicas"] == replicas, f"replicas {sts['spec']['replicas']} != {replicas}"
    assert sts["spec"]["podManagementPolicy"] == "Parallel", "pods must start in parallel to form the group"
    assert sts["spec"]["serviceName"] == f"{full}-coordinator-peers"
    args = container(sts)["args"]
    got = flag(args, "initial-members")
    want = members(founders or replicas, ns, full)
    assert got == want, f"--initial-members {got!r} != {want!r}"
    assert flag(args, "admin-token-file") == "/etc/gloss/tokens/admin-token"
    assert flag(args, "join-token-file") == "/etc/gloss/tokens/join-token"
    assert flag(args, "listen") == "0.0.0.0:7070" and flag(args, "http") == "0.0.0.0:7080"
    assert flag(args, "raft-listen") == "0.0.0.0:7071"
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"]
    peers = one(objs, "Service", f"{full}-coordinator-peers")
    assert peers["spec"]["clusterIP"] == "None" and peers["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in peers["spec"]["ports"]} == {7070, 7071, 7080}
    client = one(objs, "Service", full)
    assert {p["name"]: p["port"] for p in client["spec"]["ports"]} == {"grpc": 7070, "http": 7080}
    pdb = one(objs, "PodDisruptionBudget", f"{full}-coordinator")
    assert pdb["spec"]["maxUnavailable"] == 1, "PDB must allow exactly one coordinator down"
    # The wrapper derives node ids from the ordinal and advertises the stable DNS name.
    last = replicas - 1
    argv = run_wrapper(sts, f"{full}-coordinator-{last}")
    host = f"{full}-coordinator-{last}.{full}-coordinator-peers.{ns}.svc.cluster.local"
    joins = founders is not None and last >= founders
    assert argv[0] == "coordinator" and ("--join" in argv) == joins, f"pod {last}: --join expected {joins}: {argv}"
    i = argv.index("--node-id")
    assert argv[i + 1] == str(replicas), f"pod {last} got --node-id {argv[i + 1]}"
    assert argv[argv.index("--advertise") + 1] == f"{host}:7071"
    assert argv[argv.index("--advertise-api") + 1] == f"{host}:7070"
    assert f"--initial-members={want}" in argv
    first = run_wrapper(sts, f"{full}-coordinator-0")
    assert first[0] == "coordinator" and first[first.index("--node-id") + 1] == "1", first
    return sts


def no_gpu(objs):
    for o in find(objs, "StatefulSet") + find(objs, "Deployment"):
        assert "nvidia.com/gpu" not in yaml.safe_dump(container(o).get("resources") or {}), \
            f"{o['metadata']['name']} requests GPUs though none were asked for"


def default_facts(objs, notes):
    common(objs)
    sts = coordinator_basics(objs, 3)
    c = container(sts)
    assert c["readinessProbe"]["grpc"] == {"port": 7070, "service": "gloss.v1.ClusterService"}, c["readinessProbe"]
    assert c["livenessProbe"]["grpc"] == {"port": 7070} and c["startupProbe"]["grpc"] == {"port": 7070}
    aff = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in aff, "anti-affinity should be preferred by default"
    no_gpu(objs)
    w = one(objs, "Deployment", "gloss-worker-cpu")
    args = container(w)["args"]
    assert args[0] == "worker" and container(w)["command"] == ["gloss"]
    addrs = flag(args, "coordinator").split(",")
    assert addrs == [f"gloss-coordinator-{i}.gloss-coordinator-peers.gloss.svc.cluster.local:7071" for i in range(3)], addrs
    assert flag(args, "join-token-file") == "/etc/gloss/tokens/join-token"
    assert flag(args, "labels") == "pool=cpu" and flag(args, "gpus") is None
    assert flag(args, "work-dir") == "/var/lib/gloss/work"
    env = {e["name"]: e for e in container(w)["env"]}
    assert env["GLOSS_MODELS_DIR"]["value"] == "/var/lib/gloss/models"
    assert env["GLOSS_WORKER_MEMORY"]["value"] == "$(GLOSS_POD_MEMORY_LIMIT_MIB)MiB", "offer the pod's memory, not the node's"
    assert env["GLOSS_POD_MEMORY_LIMIT_MIB"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.memory"
    tokens = one(objs, "Secret", "gloss-tokens")
    for key in ("join-token", "admin-token"):
        assert len(base64.b64decode(tokens["data"][key])) == 48, f"{key} not generated"
    assert tokens["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    worker_secret = [v for v in w["spec"]["template"]["spec"]["volumes"] if v["name"] == "tokens"][0]["secret"]
    assert [i["key"] for i in worker_secret["items"]] == ["join-token"], "workers must only see the join token"
    for kind in ("Ingress", "ServiceMonitor", "NetworkPolicy"):
        assert not find(objs, kind), f"{kind} rendered though not enabled"
    assert "--tls-dir" not in yaml.safe_dump(objs)
    assert "get secret gloss-tokens" in notes and "port-forward svc/gloss 7080:7080" in notes, "NOTES.txt next steps"
    assert "glossctl cluster status" in notes


def single_facts(objs, notes):
    common(objs)
    coordinator_basics(objs, 1)
    w = one(objs, "Deployment", "gloss-worker-cpu")
    assert flag(container(w)["args"], "coordinator") == \
        "gloss-coordinator-0.gloss-coordinator-peers.gloss.svc.cluster.local:7071"
    no_gpu(objs)
    assert "no failover" in notes


def gpu_facts(objs, notes):
    common(objs)
    sts = coordinator_basics(objs, 5)
    aff = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in aff, "hard anti-affinity asked for"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast-ssd"
    gpu = one(objs, "Deployment", "gloss-worker-h200")
    res = container(gpu)["resources"]
    assert res["requests"]["nvidia.com/gpu"] == 1 and res["limits"]["nvidia.com/gpu"] == 1, res
    assert res["requests"]["cpu"] == "8", "the pool's own resources must be kept"
    assert container(gpu)["image"] == "gloss-cuda:0.1.0"
    pod = gpu["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}
    args = container(gpu)["args"]
    assert flag(args, "gpus") == "h200:143771MiB"
    assert flag(args, "labels") == "accelerator=h200,pool=h200,site=dc1", flag(args, "labels")
    assert len(flag(args, "coordinator").split(",")) == 5
    assert gpu["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    cpu = one(objs, "Deployment", "gloss-worker-cpu")
    assert "nvidia.com/gpu" not in yaml.safe_dump(container(cpu)["resources"]), "CPU pool requests GPUs"
    assert container(cpu)["image"] == "gloss:0.1.0" and "tolerations" not in cpu["spec"]["template"]["spec"]
    assert cpu["spec"]["replicas"] == 2 and gpu["spec"]["replicas"] == 2


def tls_facts(objs, notes):
    common(objs)
    sts = coordinator_basics(objs, 3)
    c = container(sts)
    assert flag(c["args"], "tls-dir") == "/etc/gloss/tls"
    tls_vol = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"][0]
    assert tls_vol["secret"]["secretName"] == "gloss-tls"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["scheme"] == "HTTPS", f"{probe} must use HTTPS when TLS is on"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for w in find(objs, "Deployment"):
        assert flag(container(w)["args"], "tls-dir") == "/etc/gloss/tls"
    assert not [s for s in find(objs, "Secret") if s["type"] == "kubernetes.io/tls"], "existing TLS Secret re-created"
    ing = one(objs, "Ingress", "gloss")
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "gloss.internal.example"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "gloss", "port": {"name": "http"}}
    assert ing["spec"]["ingressClassName"] == "nginx" and ing["spec"]["tls"][0]["secretName"] == "gloss-web-tls"
    sm = one(objs, "ServiceMonitor", "gloss")
    ep = sm["spec"]["endpoints"][0]
    assert ep["port"] == "http" and ep["path"] == "/metrics" and ep["scheme"] == "https"
    assert ep["tlsConfig"]["ca"]["secret"] == {"name": "gloss-tls", "key": "ca.crt"}
    assert sm["spec"]["selector"]["matchLabels"]["gloss/service"] == "peers"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert len(find(objs, "NetworkPolicy")) == 2
    assert "https://gloss.internal.example/" in notes


def tls_inline_facts(objs, notes):
    common(objs)
    s = one(objs, "Secret", "gloss-tls")
    assert s["type"] == "kubernetes.io/tls" and set(s["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    sts = one(objs, "StatefulSet", "gloss-coordinator")
    ann = sts["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/tls" in ann and ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/scheme"] == "https"


def grow_facts(objs, notes):
    common(objs)
    coordinator_basics(objs, 5, founders=3)
    assert len(flag(container(one(objs, "Deployment", "gloss-worker-cpu"))["args"], "coordinator").split(",")) == 5
    assert "glossctl cluster add-learner 4 gloss-coordinator-3." in notes, "NOTES must say how to add node 4"


def no_workers_facts(objs, notes):
    common(objs)
    assert not find(objs, "Deployment") and not find(objs, "ServiceAccount")
    assert not [s for s in find(objs, "Secret") if s["metadata"]["name"].endswith("-tokens")]
    sts = one(objs, "StatefulSet", "gloss-coordinator")
    vol = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "tokens"][0]
    assert vol["secret"]["secretName"] == "my-tokens"
    assert sts["spec"]["template"]["spec"]["serviceAccountName"] == "default"


facts("default", default_facts)
facts("single", single_facts)
facts("gpu", gpu_facts)
facts("tls-ingress", tls_facts)
facts("tls-inline", tls_inline_facts)
facts("grow-3-to-5", grow_facts)
facts("no-workers", no_workers_facts)
facts("replace-node-3", lambda objs, notes: coordinator_basics(objs, 3, founders=2))

# Another release name and namespace: names and addresses follow.
try:
    objs, _ = render({}, release="acme", namespace="ml")
    coordinator_basics(objs, 3, full="acme-gloss", ns="ml")
    ok("release acme in namespace ml: names and addresses")
except (AssertionError, helm.HelmError) as e:
    fail("release acme in namespace ml: names and addresses", e)

# Given tokens are used as they are.
try:
    objs, _ = render({"auth": {"joinToken": "j" * 32, "adminToken": "a" * 32}})
    data = one(objs, "Secret", "gloss-tokens")["data"]
    assert base64.b64decode(data["join-token"]) == b"j" * 32
    assert base64.b64decode(data["admin-token"]) == b"a" * 32
    ok("given tokens are kept as given")
except (AssertionError, helm.HelmError) as e:
    fail("given tokens are kept as given", e)

# Single sign-on: the [oidc] table is rendered into a config file that gloss itself accepts
# (parsed here as TOML with the same keys), mounted with the client secret and the CA, and a
# change of it restarts the coordinators.
def sso_facts(objs, _notes):
    import tomllib
    cm = one(objs, "ConfigMap", "gloss-coordinator-config")
    oidc = tomllib.loads(cm["data"]["gloss.toml"])["oidc"]
    assert oidc["issuer"] == "https://sso.example.com/realms/acme", oidc
    assert oidc["cli_client_id"] == "gloss-cli" and oidc["scopes"] == ["openid", "profile", "groups"], oidc
    assert oidc["roles"] == {"gloss-admins": ["admin"], 'acme "qa"': ["acme:reviewer", "annotator"]}, oidc
    assert oidc["client_secret_file"] == "/etc/gloss/sso/client-secret", oidc
    assert oidc["ca_cert_file"] == "/etc/gloss/sso-ca/ca.crt", oidc
    assert oidc["clock_skew_seconds"] == 60 and oidc["max_token_age_seconds"] == 600, oidc
    sts = one(objs, "StatefulSet", "gloss-coordinator")
    c = container(sts)
    assert flag(c["args"], "config") == "/etc/gloss/config/gloss.toml", c["args"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["config"] == "/etc/gloss/config" and mounts["sso-client-secret"] == "/etc/gloss/sso", mounts
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert vols["sso-client-secret"]["secret"]["secretName"] == "gloss-sso", vols
    assert vols["sso-ca"]["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}], vols
    assert "checksum/config" in sts["spec"]["template"]["metadata"]["annotations"]
    # Without sso, no config file and no --config.
    default = one(rendered["default"][0], "StatefulSet", "gloss-coordinator")
    assert flag(container(default)["args"], "config") is None
    assert not find(rendered["default"][0], "ConfigMap", "gloss-coordinator-config")


facts("sso", sso_facts)

# Values that must be refused, each with a message that names the problem.
REFUSED = [
    ("coordinators.replicas=2", {"coordinators": {"replicas": 2}}, "replicas"),
    ("coordinators.replicas=4", {"coordinators": {"replicas": 4}}, "replicas"),
    ("coordinators.founders > replicas", {"coordinators": {"replicas": 3, "founders": 5}}, "founders"),
    ("tls.enabled without certificates", {"tls": {"enabled": True}}, "tls.existingSecret"),
    ("duplicate worker pool names", {"workers": {"pools": [{"name": "a"}, {"name": "a"}]}}, "used twice"),
    ("unknown top-level key (typo)", {"coordinator": {"replicas": 3}}, "coordinator"),
    ("bad pool name", {"workers": {"pools": [{"name": "GPU_pool"}]}}, "name"),
    ("short join token", {"auth": {"joinToken": "short"}}, "joinToken"),
    ("probe type", {"coordinators": {"probes": {"type": "tcp"}}}, "type"),
    ("sso without an issuer", {"sso": {"enabled": True, "clientId": "g", "redirectUrl": "https://g.example.com/auth/oidc/callback", "roles": {"x": ["admin"]}}}, "sso.issuer"),
    ("sso without roles", {"sso": {"enabled": True, "issuer": "https://i.example.com", "clientId": "g", "redirectUrl": "https://g.example.com/auth/oidc/callback"}}, "sso.roles"),
    ("sso over plain http", {"sso": {"issuer": "http://idp.example.com"}}, "issuer"),
    ("sso admin in one project", {"sso": {"roles": {"x": ["acme:admin"]}}}, "roles"),
    ("GPU inventory without memory", {"workers": {"pools": [{"name": "g", "gpu": {"count": 1, "inventory": "h200"}}]}}, "inventory"),
]
for name, values, needle in REFUSED:
    try:
        render(values)
        fail(f"refused: {name}", "rendered without an error")
    except helm.HelmError as e:
        check(f"refused: {name}", needle in str(e), f"message does not name {needle!r}: {e}")

print(f"helm chart tests took {time.monotonic() - started:.1f}s")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PYTHON

#!/usr/bin/env python3
"""Static checks of the Kubernetes manifests in deploy/k8s (no cluster, no network).

- every YAML file parses; every kustomization's resources and patches exist, and
  every manifest file is used by some kustomization;
- each kustomization (base, topics, overlays) is rendered by a small kustomize in
  this file (resources, namespace, labels, images, replicas, configMapGenerator,
  strategic-merge and JSON 6902 patches; an unknown field is a failure, a patch that
  matches nothing too); when `kubectl kustomize` is on PATH its rendering is checked
  the same way and must equal ours;
- on every rendering: one Deployment per program, running that program (a real one,
  from the CMake files), its HTTP port (common/src/topology.c) in HTTP_LISTEN, the
  container port and the probes (/healthz live and startup, /readyz ready; on the
  internal port when HTTP_INTERNAL_ADDR is set),
  resources, a restricted securityContext, no service links, a termination grace
  period; env names are ones the program reads (docs/CONFIGURATION.md section of
  the program and a saga_env call in the sources, or the KAFKA_* passthrough); the
  relay has two replicas and RELAY_SOURCES names every service database; each
  DATABASE_URL is the CloudNativePG Secret of the cluster holding that service's
  database; the order-service Service selects exactly the order-service pods on
  its API port; every Deployment has a PodDisruptionBudget selecting exactly its
  pods; the KafkaTopics are the topics of topology.c with 6 partitions,
  replication 3 and min.insync.replicas 2;
- with --bin DIR: each Deployment's environment (Secrets replaced by placeholders)
  passes `<program> --check-config` of the built program (librdkafka checks the
  KAFKA_* properties, the program its own variables).

usage: k8s_check.py <repo> [--bin <build>/bin] [--no-kubectl]
"""
import atexit
import copy
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

TMP = tempfile.mkdtemp(prefix="k8s_check-")
atexit.register(shutil.rmtree, TMP, True)

args = sys.argv[1:]
if not args:
    sys.exit(__doc__)
root = pathlib.Path(args[0]).resolve()
bindir = args[args.index("--bin") + 1] if "--bin" in args else None
use_kubectl = "--no-kubectl" not in args
k8s = root / "deploy" / "k8s"
passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL - {what}{': ' + detail if detail else ''}")
    return ok


class RenderError(Exception):
    pass


# --- what the code says ------------------------------------------------------------

topology = (root / "common/src/topology.c").read_text()
SERVICES = [dict(zip(("name", "program", "topic", "dlq", "group", "database", "port"), m))
            for m in re.findall(r'\{"(\w+)",\s*"([\w-]+)",\s*"([\w.]+)",\s*"([\w.]+)",\s*'
                                r'"([\w-]+)",\s*"(\w+)",\s*(\d+),', topology)]
check("topology.c lists five services", len(SERVICES) == 5, str(SERVICES))
for s in SERVICES:
    s["port"] = int(s["port"])
relay_port = int(re.search(r"#define SAGA_RELAY_HTTP_PORT (\d+)",
                           (root / "common/include/saga/topology.h").read_text()).group(1))
PORTS = {s["program"]: s["port"] for s in SERVICES}
PORTS["outbox-relay"] = relay_port
TOPICS = [s["topic"] for s in SERVICES] + [s["dlq"] for s in SERVICES]
m = re.search(r'saga_env_long\("TOPIC_PARTITIONS",\s*(\d+)', (root / "common/src/config.c").read_text())
DEFAULT_PARTITIONS = int(m.group(1)) if m else None
check("config.c's TOPIC_PARTITIONS default is found", DEFAULT_PARTITIONS is not None)

# Programs the build makes: saga_add_program(NAME ...), ${svc} expanded by its foreach.
PROGRAMS = set()
for cm in root.glob("*/CMakeLists.txt"):
    text = cm.read_text()
    loops = dict(re.findall(r"foreach\((\w+)\s+([^)]*)\)", text))
    for name in re.findall(r"saga_add_program\(([^\s)]+)", text):
        var = re.search(r"\$\{(\w+)\}", name)
        if var and var.group(1) in loops:
            PROGRAMS.update(name.replace(var.group(0), v) for v in loops[var.group(1)].split())
        elif not var:
            PROGRAMS.add(name)
check("the build makes every program of topology.c and the relay",
      set(PORTS) <= PROGRAMS, f"{sorted(PROGRAMS)}")

# Environment variables: what the sources read ...
sources = "".join(p.read_text() for d in ("common", "relay", "services", "sagactl")
                  for p in (root / d).rglob("*.c"))
READ = set(re.findall(r'saga_env[a-z_]*\(\s*"([A-Z][A-Z0-9_]*)"', sources))
# ... and, per program, what docs/CONFIGURATION.md documents for it.
FIVE = [s["program"] for s in SERVICES]
SECTION_PROGRAMS = {
    "Common to every program": FIVE + ["outbox-relay"],
    "Services": FIVE,
    "order-service": ["order-service"],
    "notification-service": ["notification-service"],
    "The consumer runtime (every service)": FIVE,
    "outbox-relay": ["outbox-relay"],
}
DOCUMENTED = {p: set() for p in PORTS}
section = None
for line in (root / "docs/CONFIGURATION.md").read_text().splitlines():
    h = re.match(r"#{2,3} (.*)", line)
    if h:
        section = h.group(1).strip()
        continue
    cell = re.match(r"\|([^|]*)\|", line)
    if cell and section in SECTION_PROGRAMS:
        for name in re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", cell.group(1)):
            for p in SECTION_PROGRAMS[section]:
                DOCUMENTED[p].add(name)
check("docs/CONFIGURATION.md documents RELAY_SOURCES and DATABASE_URL",
      "RELAY_SOURCES" in DOCUMENTED["outbox-relay"] and "DATABASE_URL" in DOCUMENTED["order-service"])
# libpq's own variables, documented in docs/DEPLOYING.md: the password of URLs without
# one, and the connect timeout.
LIBPQ = {"PGPASSWORD", "PGCONNECT_TIMEOUT"}


def env_name_problem(program, name):
    if name.startswith("KAFKA_") and "KAFKA_*" in DOCUMENTED[program]:
        return None  # the passthrough; --check-config asks librdkafka
    if name in LIBPQ:
        return None
    if name not in DOCUMENTED[program]:
        return f"{name} is not a variable of {program} in docs/CONFIGURATION.md"
    if name not in READ:
        return f"{name} is documented but no saga_env() call reads it"
    return None


# --- YAML files and kustomizations --------------------------------------------------


def load_docs(path):
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        raise RenderError(f"{path.relative_to(root)}: {e}")


yaml_files = sorted(p for p in k8s.rglob("*") if p.suffix in (".yaml", ".yml"))
check("deploy/k8s has YAML files", len(yaml_files) > 5, str(len(yaml_files)))
parsed = {}
for p in yaml_files:
    try:
        parsed[p] = load_docs(p)
        for d in parsed[p]:
            check(f"{p.relative_to(root)}: every document is an object with apiVersion and kind "
                  f"(or a patch list)", isinstance(d, list) or (isinstance(d, dict) and "kind" in d
                                                               and "apiVersion" in d))
    except RenderError as e:
        check("YAML parses", False, str(e))

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images",
                        "replicas", "configMapGenerator", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}
# Lists that strategic merge patches merge by a key (the Kubernetes API's patchMergeKey).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name", "env": "name",
              "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name"}
referenced = set()


def smp(base, patch):
    """A strategic merge patch, enough for Kubernetes objects (no $patch directives)."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif k in MERGE_KEYS and isinstance(v, list) and isinstance(out.get(k), list):
            key = MERGE_KEYS[k]
            merged = out[k]
            for item in v:
                at = [i for i, o in enumerate(merged) if o.get(key) == item.get(key)]
                if at:
                    merged[at[0]] = smp(merged[at[0]], item)
                else:
                    merged.append(copy.deepcopy(item))
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = smp(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def json6902(obj, ops, where):
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = obj
        for p in parts[:-1]:
            try:
                parent = parent[int(p)] if isinstance(parent, list) else parent[p]
            except (KeyError, IndexError, ValueError):
                raise RenderError(f"{where}: {op['op']} {op['path']}: no such path in "
                                  f"{obj['kind']}/{obj['metadata']['name']}")
        last = parts[-1]
        if op["op"] == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif op["op"] in ("replace", "remove"):
            try:
                key = int(last) if isinstance(parent, list) else last
                parent[key]
            except (KeyError, IndexError, ValueError):
                raise RenderError(f"{where}: {op['op']} {op['path']}: no such path")
            if op["op"] == "remove":
                del parent[key]
            else:
                parent[key] = copy.deepcopy(op["value"])
        else:
            raise RenderError(f"{where}: JSON patch op {op['op']} is not supported by this check")


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def matches_target(obj, target):
    if "kind" in target and obj["kind"] != target["kind"]:
        return False
    if "name" in target and not re.fullmatch(target["name"], obj["metadata"]["name"]):
        return False
    if "labelSelector" in target:
        sel = dict(kv.split("=", 1) for kv in target["labelSelector"].split(","))
        if not selects(sel, obj["metadata"].get("labels", {})):
            return False
    return True


def pod_templates(obj):
    t = obj.get("spec", {}).get("template")
    return [t] if t else []


def render(kdir):
    """Renders the kustomization in kdir; returns (objects, generated ConfigMap names)."""
    kfile = kdir / "kustomization.yaml"
    if not kfile.exists():
        raise RenderError(f"{kdir.relative_to(root)}: no kustomization.yaml")
    referenced.add(kfile)
    kust = yaml.safe_load(kfile.read_text())
    where = kfile.relative_to(root)
    unknown = set(kust) - KUSTOMIZATION_FIELDS
    if unknown:
        raise RenderError(f"{where}: fields {sorted(unknown)} are not understood by this check "
                          "(teach tests/deploy/k8s_check.py)")
    objs, generated = [], set()
    for r in kust.get("resources", []):
        p = (kdir / r).resolve()
        if not p.exists():
            raise RenderError(f"{where}: resource {r} does not exist")
        if p.is_dir():
            o, g = render(p)
            objs += o
            generated |= g
        else:
            referenced.add(p)
            objs += copy.deepcopy(load_docs(p))
    for gen in kust.get("configMapGenerator", []):
        data = dict(lit.split("=", 1) for lit in gen.get("literals", []))
        have = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == gen["name"]]
        behavior = gen.get("behavior", "create")
        if behavior == "create":
            if have:
                raise RenderError(f"{where}: ConfigMap {gen['name']} is generated twice")
            objs.append({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": gen["name"]}, "data": data})
            generated.add(gen["name"])
        elif behavior in ("merge", "replace"):
            if not have:
                raise RenderError(f"{where}: configMapGenerator {behavior}s into {gen['name']}, "
                                  "which no base generates")
            have[0]["data"] = {**have[0].get("data", {}), **data} if behavior == "merge" else data
        else:
            raise RenderError(f"{where}: configMapGenerator behavior {behavior}")
    for i, p in enumerate(kust.get("patches", [])):
        if "path" in p:
            pf = (kdir / p["path"]).resolve()
            if not pf.exists():
                raise RenderError(f"{where}: patch {p['path']} does not exist")
            referenced.add(pf)
            body = yaml.safe_load(pf.read_text())
        else:
            body = yaml.safe_load(p["patch"])
        target = p.get("target")
        if target is None:
            if not isinstance(body, dict):
                raise RenderError(f"{where}: patch {i} is a JSON patch without a target")
            target = {"kind": body["kind"], "name": body["metadata"]["name"]}
        hits = [j for j, o in enumerate(objs) if matches_target(o, target)]
        if not hits:
            raise RenderError(f"{where}: patch {p.get('path', i)} targets {target}: no such object")
        for j in hits:
            if isinstance(body, list):
                json6902(objs[j], body, f"{where}: patch {i}")
            else:
                objs[j] = smp(objs[j], body)
    if "namespace" in kust:
        for o in objs:
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = kust["namespace"]
    for entry in kust.get("labels", []):
        pairs = entry["pairs"]
        for o in objs:
            o["metadata"].setdefault("labels", {}).update(pairs)
            if entry.get("includeSelectors"):
                raise RenderError(f"{where}: labels with includeSelectors: selectors are immutable")
            if entry.get("includeTemplates"):
                for t in pod_templates(o):
                    t.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
    for img in kust.get("images", []):
        for o in objs:
            for t in pod_templates(o):
                for c in t["spec"].get("containers", []) + t["spec"].get("initContainers", []):
                    name, tag = re.fullmatch(r"(.+?)(?::([\w.-]+))?", c["image"]).groups()
                    if name == img["name"]:
                        tag = str(img.get("newTag", tag or ""))
                        c["image"] = img.get("newName", name) + (":" + tag if tag else "")
    for rep in kust.get("replicas", []):
        hit = [o for o in objs if o["metadata"]["name"] == rep["name"] and "replicas" in o.get("spec", {})]
        if not hit:
            raise RenderError(f"{where}: replicas for {rep['name']}: no such workload")
        for o in hit:
            o["spec"]["replicas"] = rep["count"]
    return objs, generated


def canonical(o):
    """Lists of named objects sorted by name: the order strategic merge leaves differs."""
    if isinstance(o, dict):
        return {k: canonical(v) for k, v in o.items()}
    if isinstance(o, list):
        items = [canonical(v) for v in o]
        if items and all(isinstance(v, dict) and "name" in v for v in items):
            items.sort(key=lambda v: str(v["name"]))
        return items
    return o


def kubectl_render(kdir, generated):
    out = subprocess.run(["kubectl", "kustomize", str(kdir)], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RenderError(f"kubectl kustomize {kdir.relative_to(root)}: {out.stderr.strip()}")
    objs = [d for d in yaml.safe_load_all(out.stdout) if d]
    # Generated ConfigMaps carry a content hash in kubectl's rendering: strip it.
    hashed = {}
    for o in objs:
        mm = re.fullmatch(r"(.*)-[a-z0-9]{10}", o["metadata"]["name"])
        if o["kind"] == "ConfigMap" and mm and mm.group(1) in generated:
            hashed[o["metadata"]["name"]] = mm.group(1)

    def unhash(x):
        if isinstance(x, dict):
            return {k: unhash(v) for k, v in x.items()}
        if isinstance(x, list):
            return [unhash(v) for v in x]
        return hashed.get(x, x) if isinstance(x, str) else x
    return [unhash(o) for o in objs]


# --- checks on a rendering -----------------------------------------------------------


def quantity(q):
    m = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|k|M|G)?", str(q))
    if not m:
        return None
    mult = {None: 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    return float(m.group(1)) * mult[m.group(2)]


def check_app(label, objs):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    deps = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    check(f"{label}: one Deployment per program", set(deps) == set(PORTS), f"{sorted(deps)}")
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind.get("ConfigMap", [])}
    clusters = {c["metadata"]["name"]: c for c in by_kind.get("Cluster", [])
                if c["apiVersion"].startswith("postgresql.cnpg.io/")}
    images = set()
    relay_secret = None
    for name, d in sorted(deps.items()):
        what = f"{label}: Deployment {name}"
        spec, pod = d["spec"], d["spec"]["template"]["spec"]
        pod_labels = d["spec"]["template"]["metadata"].get("labels", {})
        check(f"{what}: its selector matches its pods",
              selects(spec["selector"]["matchLabels"], pod_labels))
        ns = d["metadata"].get("namespace")
        containers = pod["containers"]
        if not check(f"{what}: one container", len(containers) == 1):
            continue
        c = containers[0]
        argv = c.get("command", []) + c.get("args", [])
        check(f"{what}: runs a program the build makes", argv and argv[0] in PROGRAMS, str(argv))
        check(f"{what}: runs {name}", argv[:1] == [name], str(argv))
        images.add(c["image"])
        port = PORTS.get(name)
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        check(f"{what}: container port http is {port}", ports.get("http") == port, str(ports))

        def probe_port(pr):
            p = pr.get("httpGet", {}).get("port")
            return ports.get(p) if isinstance(p, str) else p
        # With an internal listener (HTTP_INTERNAL_ADDR) the probes go there.
        internal = next((str(e.get("value")) for e in c.get("env", [])
                         if e.get("name") == "HTTP_INTERNAL_ADDR"), None)
        probed = port
        if internal:
            probed = int(internal.rsplit(":", 1)[1])
            check(f"{what}: container port internal is HTTP_INTERNAL_ADDR's {probed}",
                  ports.get("internal") == probed, str(ports))
        for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                           ("startupProbe", "/healthz")):
            pr = c.get(kind)
            check(f"{what}: {kind} GET {path} on port {probed}",
                  pr is not None and pr.get("httpGet", {}).get("path") == path
                  and probe_port(pr) == probed, json.dumps(pr))
        res = c.get("resources", {})
        for k in ("requests", "limits"):
            check(f"{what}: resources.{k} has cpu and memory",
                  {"cpu", "memory"} <= set(res.get(k, {})), json.dumps(res))
        if {"memory"} <= set(res.get("requests", {})) and {"memory"} <= set(res.get("limits", {})):
            req, lim = quantity(res["requests"]["memory"]), quantity(res["limits"]["memory"])
            check(f"{what}: memory request <= limit, limit >= 32Mi (the measured RSS bound)",
                  req and lim and req <= lim and lim >= 32 * 2**20, json.dumps(res))
        psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
        check(f"{what}: runAsNonRoot with a numeric non-root user (the image's user is a name)",
              (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")) is True
              and int(csc.get("runAsUser", psc.get("runAsUser", 0))) > 0)
        check(f"{what}: seccomp RuntimeDefault",
              csc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") == "RuntimeDefault")
        check(f"{what}: read-only root filesystem", csc.get("readOnlyRootFilesystem") is True)
        check(f"{what}: no privilege escalation", csc.get("allowPrivilegeEscalation") is False)
        check(f"{what}: drops ALL capabilities",
              "ALL" in csc.get("capabilities", {}).get("drop", []) and
              not csc.get("capabilities", {}).get("add"))
        check(f"{what}: enableServiceLinks false (a KAFKA_PORT link variable is a config error)",
              pod.get("enableServiceLinks") is False)
        check(f"{what}: no service account token", pod.get("automountServiceAccountToken") is False)
        check(f"{what}: terminationGracePeriodSeconds set, >= 30",
              pod.get("terminationGracePeriodSeconds", 0) >= 30)
        vols = {v["name"] for v in pod.get("volumes", [])}
        for vm in c.get("volumeMounts", []):
            check(f"{what}: volume {vm['name']} exists", vm["name"] in vols)
        # The environment: names, and values for --check-config.
        env = {}
        for ef in c.get("envFrom", []):
            if "configMapRef" in ef:
                ref = ef["configMapRef"]["name"]
                if check(f"{what}: envFrom ConfigMap {ref} exists", ref in configmaps):
                    env.update(configmaps[ref])
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = str(e["value"])
            else:
                ref = e.get("valueFrom", {}).get("secretKeyRef", {})
                env[e["name"]] = ("secret", ref.get("name"), ref.get("key"))
        for k in sorted(env):
            problem = env_name_problem(name, k)
            check(f"{what}: env {k}", problem is None, problem or "")
        check(f"{what}: HTTP_LISTEN is 0.0.0.0:{port}", env.get("HTTP_LISTEN") == f"0.0.0.0:{port}",
              str(env.get("HTTP_LISTEN")))
        check(f"{what}: sets no test hook", "SAGA_FAULT" not in env)
        svc = next((s for s in SERVICES if s["program"] == name), None)
        placeholders = {}
        if svc:
            ref = env.get("DATABASE_URL")
            owner = [cn for cn, cl in clusters.items()
                     if cl["spec"].get("bootstrap", {}).get("initdb", {}).get("database") == svc["database"]]
            if check(f"{what}: DATABASE_URL from a Secret's uri", isinstance(ref, tuple) and ref[2] == "uri",
                     str(ref)) and clusters:
                check(f"{what}: DATABASE_URL is the CloudNativePG Secret <cluster>-app of the "
                      f"cluster with database {svc['database']}",
                      len(owner) == 1 and ref[1] == owner[0] + "-app", f"{ref[1]}, clusters {owner}")
                if owner:
                    initdb = clusters[owner[0]]["spec"]["bootstrap"]["initdb"]
                    check(f"{label}: Cluster {owner[0]}: database owned by the role {svc['database']}",
                          initdb.get("owner") == svc["database"])
            host = f"{owner[0]}-rw" if owner else "db"
            placeholders["DATABASE_URL"] = f"postgresql://{svc['database']}:secret@{host}:5432/{svc['database']}"
        else:
            check(f"{what}: two replicas or more (a hot standby)", spec.get("replicas", 1) >= 2)
            srcs = dict(item.split("=", 1) for item in str(env.get("RELAY_SOURCES", "")).split())
            check(f"{what}: RELAY_SOURCES names every service",
                  set(srcs) == {s["name"] for s in SERVICES}, str(sorted(srcs)))
            for s in SERVICES:
                url = srcs.get(s["name"], "")
                um = re.match(r"postgresql://([^:@/]+)@([^:/?]+)(?::\d+)?/([^?]+)", url)
                if not check(f"{what}: RELAY_SOURCES {s['name']} is a URL of the relay's role "
                             "without a password (PGPASSWORD)", um is not None, url):
                    continue
                check(f"{what}: RELAY_SOURCES {s['name']}: role outbox_relay, database {s['database']}",
                      um.group(1) == "outbox_relay" and um.group(3) == s["database"], url)
                if clusters:
                    owner = [cn for cn, cl in clusters.items()
                             if cl["spec"].get("bootstrap", {}).get("initdb", {}).get("database")
                             == s["database"]]
                    check(f"{what}: RELAY_SOURCES {s['name']} is the read-write Service of its cluster",
                          len(owner) == 1 and um.group(2).split(".")[0] == owner[0] + "-rw", url)
            pw = env.get("PGPASSWORD")
            if check(f"{what}: PGPASSWORD from a Secret", isinstance(pw, tuple), str(pw)):
                relay_secret = pw[1]
        for k, v in env.items():
            if isinstance(v, tuple):
                placeholders.setdefault(k, "placeholder")
        run_env = {**{k: v for k, v in env.items() if not isinstance(v, tuple)}, **placeholders}
        # A file from a mounted Secret (AUTH_PUBLIC_KEY_FILE): a stand-in PEM of that kind.
        secret_vols = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
        for vm in c.get("volumeMounts", []):
            if vm["name"] not in secret_vols:
                continue
            for k, v in list(run_env.items()):
                if isinstance(v, str) and v.startswith(vm["mountPath"].rstrip("/") + "/"):
                    stand_in = pathlib.Path(TMP) / f"{name}-{k}"
                    stand_in.write_text("-----BEGIN PUBLIC KEY-----\nstand-in\n"
                                        "-----END PUBLIC KEY-----\n")
                    run_env[k] = str(stand_in)
        if bindir:
            exe = pathlib.Path(bindir) / argv[0]
            if check(f"{what}: {exe} exists (build it first)", exe.exists()):
                out = subprocess.run([str(exe), "--check-config"], capture_output=True, text=True,
                                     env={"PATH": "/usr/bin:/bin", **run_env}, timeout=60)
                check(f"{what}: {argv[0]} --check-config accepts its environment",
                      out.returncode == 0, (out.stderr or out.stdout).strip())
                check(f"{what}: --check-config shows HTTP_LISTEN=0.0.0.0:{port}",
                      f"HTTP_LISTEN=0.0.0.0:{port}\n" in out.stdout)
    check(f"{label}: every Deployment runs the same image", len(images) == 1, str(images))
    # PostgreSQL: the relay's role exists before the services migrate, with its password.
    for cn, cl in sorted(clusters.items()):
        spec = cl["spec"]
        sql = " ".join(spec.get("bootstrap", {}).get("initdb", {}).get("postInitApplicationSQL", []))
        check(f"{label}: Cluster {cn}: initdb creates the role outbox_relay",
              re.search(r"CREATE ROLE outbox_relay\b", sql) is not None, sql)
        roles = {r["name"]: r for r in spec.get("managed", {}).get("roles", [])}
        r = roles.get("outbox_relay", {})
        check(f"{label}: Cluster {cn}: managed role outbox_relay logs in with the relay's Secret",
              r.get("login") is True and r.get("passwordSecret", {}).get("name") == relay_secret,
              f"{r}, relay uses {relay_secret}")
    if clusters:
        check(f"{label}: a CloudNativePG Cluster per service database",
              {c["spec"]["bootstrap"]["initdb"]["database"] for c in clusters.values()}
              == {s["database"] for s in SERVICES})
    # Services: the order API.
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    api = services.get("order-service")
    if check(f"{label}: Service order-service exists", api is not None):
        sel = api["spec"].get("selector", {})
        hits = [n for n, d in deps.items() if selects(sel, d["spec"]["template"]["metadata"].get("labels", {}))]
        check(f"{label}: Service order-service selects the order-service pods only",
              hits == ["order-service"], str(hits))
        check(f"{label}: Service order-service is a ClusterIP", api["spec"].get("type", "ClusterIP") == "ClusterIP")
        p = api["spec"]["ports"]
        c = deps.get("order-service", {}).get("spec", {}).get("template", {}).get("spec", {}).get(
            "containers", [{}])[0]
        cports = {q.get("name"): q["containerPort"] for q in c.get("ports", [])}
        tp = p[0].get("targetPort") if p else None
        check(f"{label}: Service order-service: port 8080 to the API port",
              len(p) == 1 and p[0]["port"] == 8080
              and (cports.get(tp) if isinstance(tp, str) else tp) == PORTS["order-service"], str(p))
    # Disruption budgets.
    pdbs = by_kind.get("PodDisruptionBudget", [])
    covered = []
    for b in pdbs:
        sel = b["spec"]["selector"]["matchLabels"]
        hits = [n for n, d in deps.items() if selects(sel, d["spec"]["template"]["metadata"].get("labels", {}))]
        check(f"{label}: PodDisruptionBudget {b['metadata']['name']} selects the pods of one Deployment",
              len(hits) == 1, str(hits))
        covered += hits
        if len(hits) == 1:
            reps = deps[hits[0]]["spec"].get("replicas", 1)
            spec = b["spec"]
            ok = (spec.get("maxUnavailable", 0) >= 1 if "maxUnavailable" in spec
                  else spec.get("minAvailable", reps) < reps)
            check(f"{label}: PodDisruptionBudget {b['metadata']['name']} lets a drain proceed "
                  f"({reps} replicas)", ok, json.dumps(spec))
    check(f"{label}: every Deployment has a PodDisruptionBudget", sorted(covered) == sorted(deps),
          str(sorted(covered)))
    namespaces = {o["metadata"].get("namespace") for o in objs}
    check(f"{label}: one namespace for everything", len(namespaces) == 1, str(namespaces))


def check_topics(label, objs):
    topics = [o for o in objs if o["kind"] == "KafkaTopic"]
    names = sorted(t["spec"].get("topicName", t["metadata"]["name"]) for t in topics)
    check(f"{label}: the KafkaTopics are the topics of topology.c", names == sorted(TOPICS),
          f"{names} != {sorted(TOPICS)}")
    clusters = set()
    for t in topics:
        what = f"{label}: KafkaTopic {t['metadata']['name']}"
        check(f"{what}: kafka.strimzi.io", t["apiVersion"].startswith("kafka.strimzi.io/"))
        spec = t["spec"]
        check(f"{what}: replicas 3", spec.get("replicas") == 3, str(spec.get("replicas")))
        check(f"{what}: min.insync.replicas 2",
              str(spec.get("config", {}).get("min.insync.replicas")) == "2")
        check(f"{what}: {DEFAULT_PARTITIONS} partitions (TOPIC_PARTITIONS default)",
              spec.get("partitions") == DEFAULT_PARTITIONS, str(spec.get("partitions")))
        cl = t["metadata"].get("labels", {}).get("strimzi.io/cluster")
        check(f"{what}: labelled strimzi.io/cluster", bool(cl))
        clusters.add(cl)
    check(f"{label}: all topics belong to one Kafka cluster", len(clusters) == 1, str(clusters))


# --- the kustomizations --------------------------------------------------------------

ROOTS = {
    "base": (k8s / "base", "app"),
    "topics": (k8s / "topics", "topics"),
}
for d in sorted((k8s / "overlays").iterdir()) if (k8s / "overlays").is_dir() else []:
    if (d / "kustomization.yaml").exists():
        ROOTS[f"overlays/{d.name}"] = (d, None)
check("there is an example overlay", "overlays/example" in ROOTS, str(sorted(ROOTS)))
# kubectl's built-in kustomize, if it is recent enough for these kustomizations (the
# `labels` field; Debian's kubernetes-client 1.20 has kustomize 2 and is not used).
kubectl_note = "kubectl not found: our kustomize only"
have_kubectl = False
if use_kubectl and shutil.which("kubectl"):
    ver = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True,
                         timeout=60).stdout
    km = re.search(r"Kustomize Version: v?(\d+)\.(\d+)", ver)
    have_kubectl = km is not None and int(km.group(1)) >= 5
    kubectl_note = ("also with kubectl kustomize" if have_kubectl else
                    "kubectl's kustomize is older than v5: our kustomize only")
elif not use_kubectl:
    kubectl_note = "--no-kubectl: our kustomize only"
renders = {}
for label, (kdir, kind) in ROOTS.items():
    try:
        objs, generated = render(kdir)
    except (RenderError, KeyError, TypeError, ValueError) as e:
        check(f"{label}: renders", False, f"{type(e).__name__}: {e}")
        continue
    if kind is None:  # an overlay: what it builds on
        kind = "topics" if any(o["kind"] == "KafkaTopic" for o in objs) else "app"
    renders[label] = objs
    (check_app if kind == "app" else check_topics)(label, objs)
    if have_kubectl:
        try:
            theirs = kubectl_render(kdir, generated)
        except (RenderError, subprocess.TimeoutExpired) as e:
            check(f"{label}: kubectl kustomize renders", False, str(e))
            continue
        key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
        ours_by, theirs_by = {key(o): canonical(o) for o in objs}, {key(o): canonical(o) for o in theirs}
        check(f"{label}: kubectl kustomize renders the same objects", set(ours_by) == set(theirs_by),
              f"{sorted(set(ours_by) ^ set(theirs_by))}")
        for k in sorted(set(ours_by) & set(theirs_by)):
            check(f"{label}: {k[0]}/{k[2]} rendered by kubectl kustomize equals ours",
                  ours_by[k] == theirs_by[k],
                  f"\n  ours:   {json.dumps(ours_by[k], sort_keys=True)}"
                  f"\n  theirs: {json.dumps(theirs_by[k], sort_keys=True)}")
        (check_app if kind == "app" else check_topics)(f"{label} (kubectl)", theirs)

for p in yaml_files:
    check(f"{p.relative_to(root)} is used by a kustomization", p in referenced)

# The docs name every Secret the manifests expect you to create.
deploying = (root / "docs/DEPLOYING.md").read_text() if (root / "docs/DEPLOYING.md").exists() else ""
check("docs/DEPLOYING.md exists", bool(deploying))
secrets = set()


def collect_secrets(x):
    if isinstance(x, dict):
        if isinstance(x.get("secretName"), str):
            secrets.add(x["secretName"])
        for k in ("secretRef", "secretKeyRef", "passwordSecret"):
            if isinstance(x.get(k), dict) and "name" in x[k]:
                secrets.add(x[k]["name"])
        for v in x.values():
            collect_secrets(v)
    elif isinstance(x, list):
        for v in x:
            collect_secrets(v)


for objs in renders.values():
    collect_secrets(objs)
for s in sorted(secrets):
    check(f"docs/DEPLOYING.md names the Secret {s}",
          s in deploying or (s.endswith("-db-app") and "-db-app" in deploying))

print(f"{'ok' if not failed else 'FAILED'} - {passed} checks passed, {failed} failed; rendered "
      f"{', '.join(sorted(renders))} ({kubectl_note})"
      f"{'' if bindir else '; --check-config skipped (no --bin)'}")
sys.exit(1 if failed else 0)

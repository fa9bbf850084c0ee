"""Static checks of docker-compose.yml and the Dockerfile against the code and the
local stack, without Docker (ctest compose_check):

- the services are exactly the documented ones; images are pinned; no `version:`;
- every variable the file sets on our programs is one that program reads (its C
  sources: common/src/config.c for all, consumer.c for the services, its own
  directory), or a KAFKA_* librdkafka property; the required ones are set;
- HTTP ports, databases, roles and the relay's sources agree with the topology
  (common/src/topology.c) and the local stack (scripts/stack); health checks probe
  each program's /readyz on its port; published ports bind to ${SAGA_BIND};
- start order: our programs wait for a healthy postgres and a successful kafka-init,
  kafka-init for a healthy kafka and schema registry;
- the Kafka settings that scripts/stack writes are the broker's here too; the topics
  sagactl creates (topology.c) are DESIGN.md's / README's;
- the postgres init script makes the topology's databases and roles;
- the Dockerfile builds with the classic builder (no BuildKit-only syntax), on
  debian:bookworm, and runs as a non-root user.

Needs PyYAML (Debian's python3-yaml, in scripts/stack's packages); exits 77
(skipped) without it. Usage: compose_check.py REPO_ROOT
"""
import pathlib
import re
import sys

try:
    import yaml
except ImportError:
    print("SKIPPED - PyYAML is not installed (apt-get install python3-yaml)")
    sys.exit(77)

root = pathlib.Path(sys.argv[1])
failures = []


def fail(msg):
    failures.append(msg)


compose_text = (root / "docker-compose.yml").read_text()
compose = yaml.safe_load(compose_text)
services = compose.get("services", {})

# --- shape -----------------------------------------------------------------------
if "version" in compose:
    fail("docker-compose.yml has a `version:` key (the Compose spec has none)")
OURS = ["outbox-relay", "order-service", "inventory-service", "payment-service",
        "shipping-service", "notification-service"]
CORE = ["kafka", "schema-registry", "postgres", "kafka-init", "auth-init"] + OURS
WATCH = ["kafka-ui", "prometheus", "grafana", "mailpit", "jaeger"]
if sorted(services) != sorted(CORE + WATCH):
    fail(f"services are {sorted(services)}, expected {sorted(CORE + WATCH)}")
for name in WATCH:
    if services.get(name, {}).get("profiles") != ["watch"]:
        fail(f"{name} is not (only) in the profile `watch`")
for name in CORE:
    if services.get(name, {}).get("profiles"):
        fail(f"{name} must run without a profile")

for name, svc in services.items():
    image = svc.get("image", "")
    if name in OURS + ["kafka-init", "auth-init"]:
        if image != "order-saga:${SAGA_IMAGE_TAG:-local}" or "build" not in svc:
            fail(f"{name}: image must be order-saga:${{SAGA_IMAGE_TAG:-local}} with build: .")
        continue
    m = re.fullmatch(r"[\w./-]+:([\w.-]+)", image)
    if not m or m.group(1) == "latest":
        fail(f"{name}: image {image!r} is not pinned to a version tag")
    if "healthcheck" not in svc:
        fail(f"{name}: no health check")
    for port in svc.get("ports", []):
        if not str(port).startswith("${SAGA_BIND:-127.0.0.1}:"):
            fail(f"{name}: published port {port!r} does not bind to ${{SAGA_BIND:-127.0.0.1}}")

# --- what the programs read -------------------------------------------------------
ENV_RE = re.compile(r'(?:saga_env\w*|getenv)\("([A-Z][A-Z0-9_]+)"')


def reads(*paths):
    names = set()
    for p in paths:
        files = [p] if p.is_file() else sorted(p.rglob("*.c"))
        for f in files:
            names |= set(ENV_RE.findall(f.read_text()))
    return names


common = reads(root / "common/src/config.c", root / "common/src/http.c")  # every program
consumer = reads(*sorted((root / "common/src").glob("consumer*.c")))  # the consumer runtime
program_dirs = {"outbox-relay": root / "relay", "kafka-init": root / "sagactl"}
for s in ("order", "inventory", "payment", "shipping", "notification"):
    program_dirs[f"{s}-service"] = root / "services" / s
# order-service reads AUTH_* through common/src/auth.c (saga_auth_load).
program_dirs["order-service"] = [program_dirs["order-service"], root / "common/src/auth.c"]
if not {"DATABASE_URL", "HTTP_LISTEN", "SCHEMA_REGISTRY_URL"} <= common:
    fail(f"could not read the common variables from common/src/config.c: {sorted(common)}")

topology = (root / "common/src/topology.c").read_text()
topo = re.findall(r'\{"([a-z]+)", "([a-z-]+)", "([a-z]+)", "([a-z.]+)",\s*"[a-z-]+",\s*'
                  r'"([a-z_]+)",\s*(\d+),', topology)
if len(topo) != 5:
    fail(f"could not read the five services from topology.c: {topo}")
relay_port = int(re.search(r"SAGA_RELAY_HTTP_PORT (\d+)",
                           (root / "common/include/saga/topology.h").read_text()).group(1))
ports = {prog: int(port) for _, prog, _, _, _, port in topo}
ports["outbox-relay"] = relay_port


def env_of(svc):
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


for name in OURS + ["kafka-init"]:
    svc = services.get(name)
    if svc is None:
        continue
    env = env_of(svc)
    dirs = program_dirs[name]
    allowed = common | reads(*(dirs if isinstance(dirs, list) else [dirs]))
    if name != "kafka-init" and name != "outbox-relay":
        allowed |= consumer
    for var in env:
        if var.startswith("KAFKA_"):
            continue  # any librdkafka property (docs/CONFIGURATION.md)
        if var.startswith("OTEL_"):
            continue  # the standard OpenTelemetry variables (docs/CONFIGURATION.md)
        if var not in allowed:
            fail(f"{name}: sets {var}, which {name} does not read")
    if env.get("KAFKA_BOOTSTRAP_SERVERS") != "kafka:9092":
        fail(f"{name}: KAFKA_BOOTSTRAP_SERVERS is {env.get('KAFKA_BOOTSTRAP_SERVERS')!r}, not kafka:9092")
    if name == "kafka-init":
        cmd = " ".join(svc.get("command", []))
        if "sagactl topics create" not in cmd:
            fail("kafka-init does not run `sagactl topics create`")
        if svc.get("restart") != "no":
            fail("kafka-init is a one-shot: restart must be \"no\"")
        continue
    if svc.get("command") != [name]:
        fail(f"{name}: command is {svc.get('command')}, expected [{name!r}]")
    if env.get("OTEL_SERVICE_NAME") != name:
        fail(f"{name}: OTEL_SERVICE_NAME is {env.get('OTEL_SERVICE_NAME')!r}, not {name!r}")
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") != "${SAGA_OTLP_ENDPOINT-http://jaeger:4318}":
        fail(f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT does not point at the watch profile's jaeger")
    port = ports.get(name)
    if env.get("HTTP_LISTEN") != f"0.0.0.0:{port}":
        fail(f"{name}: HTTP_LISTEN is {env.get('HTTP_LISTEN')!r}, expected 0.0.0.0:{port} (its port)")
    published = [str(p) for p in svc.get("ports", [])]
    want = re.compile(r"\$\{SAGA_BIND:-127\.0\.0\.1\}:\$\{SAGA_[A-Z]+_PORT:-" + str(port) + r"\}:"
                      + str(port) + "$")
    if len(published) != 1 or not want.match(published[0]):
        fail(f"{name}: publishes {published}, expected ${{SAGA_BIND:-127.0.0.1}}:${{SAGA_..._PORT:-{port}}}:{port}"
             " (the local stack's port)")
    test = " ".join(svc.get("healthcheck", {}).get("test", []))
    if f"http://127.0.0.1:{port}/readyz" not in test:
        fail(f"{name}: the health check {test!r} does not probe /readyz on port {port}")
    deps = svc.get("depends_on", {})
    if not isinstance(deps, dict) or deps.get("postgres", {}).get("condition") != "service_healthy" \
            or deps.get("kafka-init", {}).get("condition") != "service_completed_successfully":
        fail(f"{name}: must depend on postgres (service_healthy) and kafka-init "
             "(service_completed_successfully)")
    if name == "outbox-relay":
        sources = dict(s.split("=", 1) for s in env.get("RELAY_SOURCES", "").split())
        want_src = {n: db for n, _, _, _, db, _ in topo}
        if sorted(sources) != sorted(want_src):
            fail(f"outbox-relay: RELAY_SOURCES names {sorted(sources)}, expected {sorted(want_src)}")
        for n, url in sources.items():
            m = re.fullmatch(r"postgresql://outbox_relay:[^@]+@postgres:5432/([a-z_]+)", url)
            if not m or m.group(1) != want_src.get(n):
                fail(f"outbox-relay: source {n}={url} is not outbox_relay@postgres:5432/{want_src.get(n)}")
    else:
        db = next(d for _, prog, _, _, d, _ in topo if prog == name)
        url = env.get("DATABASE_URL", "")
        if not re.fullmatch(rf"postgresql://{db}:[^@]+@postgres:5432/{db}", url):
            fail(f"{name}: DATABASE_URL {url!r} is not {db}@postgres:5432/{db} (its role and database)")

# --- the order API's token secret: made per deployment, never one from the repository --
# A secret committed here (deploy/compose/dev-auth-secret was one) is known to everyone
# who read the repository, who can then mint operator tokens for every compose setup.
order = services.get("order-service", {})
init = services.get("auth-init", {})
secret_path = env_of(order).get("AUTH_SECRET_FILE", "")
for name, sec in (compose.get("secrets") or {}).items():
    if "file" in sec:
        fail(f"secret {name}: read from {sec['file']}, a file in or beside the repository; "
             "the order API's secret must be made per deployment (auth-init)")
if (root / "deploy/compose/dev-auth-secret").exists():
    fail("deploy/compose/dev-auth-secret is in the repository: a secret everyone knows")
mount = [str(v) for v in order.get("volumes", []) if str(v).startswith("auth-secret:")]
if len(mount) != 1 or not str(mount[0]).endswith(":ro") or \
        not secret_path.startswith(mount[0].split(":")[1] + "/"):
    fail(f"order-service: AUTH_SECRET_FILE {secret_path!r} must be in the auth-secret volume, "
         f"mounted read-only (mounts {order.get('volumes')})")
if init.get("restart") != "no" or not any(str(v).startswith("auth-secret:")
                                           for v in init.get("volumes", [])):
    fail("auth-init must be a one-shot (restart: \"no\") writing into the auth-secret volume")
if "/dev/urandom" not in " ".join(init.get("command", [])):
    fail("auth-init must make the secret from /dev/urandom")
if order.get("depends_on", {}).get("auth-init", {}).get("condition") != \
        "service_completed_successfully":
    fail("order-service must wait for auth-init (service_completed_successfully)")
if "AUTH_ALLOW_DEV_SECRET" in env_of(order):
    fail("order-service: AUTH_ALLOW_DEV_SECRET is for local development by hand, not in the file")

deps = services.get("kafka-init", {}).get("depends_on", {})
for dep in ("kafka", "schema-registry"):
    if deps.get(dep, {}).get("condition") != "service_healthy":
        fail(f"kafka-init must wait for a healthy {dep}")

# --- Kafka: the local stack's broker settings --------------------------------------
stack = (root / "scripts/stack").read_text()
kafka_env = env_of(services.get("kafka", {}))
# (the settings after the listeners, which differ with --secure)
block = re.search(r'write_kafka_config\(\) \{.*?\n        fi\n        cat <<EOF\n(.*?)\nEOF', stack, re.S)
if not block:
    fail("could not find the broker configuration in scripts/stack")
else:
    skip = {"listeners", "advertised.listeners", "controller.quorum.voters", "log.dirs",
            "num.partitions", "listener.security.protocol.map", "inter.broker.listener.name"}
    for line in block.group(1).splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if key in skip:
            continue
        # what the single-broker stack (compose's counterpart) gives these
        value = {"$node": "1", "$(kafka_replication)": "1", "$(kafka_min_isr)": "1"}.get(value, value)
        var = "KAFKA_" + key.upper().replace(".", "_")
        got = kafka_env.get(var)
        if var == "KAFKA_PROCESS_ROLES":
            ok = got is not None and set(got.split(",")) == set(value.split(","))
        else:
            ok = got == value
        if not ok:
            fail(f"kafka: {var} is {got!r}; the local stack sets {key}={value}")

# --- topics: topology.c, DESIGN.md, README -----------------------------------------
topics = [t for _, _, t, _, _, _ in topo]
dlqs = [d for _, _, _, d, _, _ in topo]
design = root.parent / "shared/DESIGN.md"
sources = [root / "README.md"] + ([design] if design.exists() else [])
for doc in sources:
    text = doc.read_text()
    # DESIGN.md names the dead-letter topics by their pattern, README one by one.
    named = topics + (dlqs if doc.name == "README.md" else [])
    for t in named:
        if f"`{t}`" not in text:
            fail(f"{doc.name} does not name the topic `{t}` that sagactl topics create makes")
for n, _, _, d, _, _ in topo:
    if d != f"{n}.dlq":
        fail(f"the dead-letter topic of {n} is {d}, not <service>.dlq as DESIGN.md says")

# --- postgres init script -----------------------------------------------------------
pg = services.get("postgres", {})
mounts = [str(v) for v in pg.get("volumes", [])]
init = [m.split(":")[0] for m in mounts if "/docker-entrypoint-initdb.d/" in m]
if len(init) != 1:
    fail(f"postgres: expected one init script mounted in /docker-entrypoint-initdb.d, got {init}")
else:
    script = (root / init[0]).read_text()
    m = re.search(r'^services="([a-z ]+)"', script, re.M)
    if not m or m.group(1).split() != [n for n, _, _, _, _, _ in topo]:
        fail(f"{init[0]}: services={m.group(1) if m else None!r}, the topology has "
             f"{[n for n, *_ in topo]}")
    for needle in ("CREATE ROLE outbox_relay", "CREATE ROLE ${s}_service",
                   "CREATE DATABASE ${s}_service OWNER ${s}_service",
                   "REVOKE ALL ON DATABASE ${s}_service FROM PUBLIC",
                   "GRANT CONNECT ON DATABASE ${s}_service TO outbox_relay"):
        if needle not in script:
            fail(f"{init[0]}: does not {needle} (as scripts/stack does)")
    if "SAGA_DB_PASSWORD" not in env_of(pg):
        fail("postgres: SAGA_DB_PASSWORD (the roles' password) is not passed to the init script")
if "track_commit_timestamp=on" not in " ".join(pg.get("command", [])):
    fail("postgres: track_commit_timestamp=on is missing (the local stack sets it; the relay uses it)")

# --- every bind-mounted file exists; prometheus scrapes the compose services -------------
for name, svc in services.items():
    for v in svc.get("volumes", []):
        src = str(v).split(":")[0]
        if src.startswith("./") and not (root / src).exists():
            fail(f"{name}: mounts {src}, which does not exist")
prom = (root / "deploy/prometheus/prometheus.yml").read_text()
targets = re.findall(r"^\s+- ([\w-]+):(\d+)\s*$", prom, re.M)
if sorted(targets) != sorted((p, str(ports[p])) for p in OURS):
    fail(f"deploy/prometheus/prometheus.yml scrapes {targets}, the compose services are "
         f"{[(p, ports[p]) for p in OURS]}")

# --- Dockerfile ------------------------------------------------------------------------
docker = (root / "Dockerfile").read_text()
if re.search(r"^#\s*syntax=", docker, re.M | re.I):
    fail("Dockerfile: `# syntax=` needs BuildKit")
if re.search(r"^\s*RUN\s+--", docker, re.M):
    fail("Dockerfile: RUN --mount/--network needs BuildKit")
if re.search(r"<<-?\s*['\"]?[A-Z]+", docker):
    fail("Dockerfile: heredocs need BuildKit")
froms = re.findall(r"^FROM\s+(\S+)", docker, re.M)
base = re.search(r"^ARG BASE_IMAGE=(\S+)", docker, re.M)
if not froms or any(f not in ("debian:bookworm", "${BASE_IMAGE}") for f in froms) \
        or (base and base.group(1) != "debian:bookworm"):
    fail(f"Dockerfile: stages start from {froms} (BASE_IMAGE={base and base.group(1)}), expected debian:bookworm")
users = re.findall(r"^USER\s+(\S+)", docker, re.M)
if not users or users[-1].split(":")[0] in ("root", "0"):
    fail(f"Dockerfile: the runtime stage must end with a non-root USER, got {users}")
for prog in OURS + ["sagactl"]:
    if not (root / ("sagactl" if prog == "sagactl" else "relay" if prog == "outbox-relay"
                    else "services/" + prog.replace("-service", ""))).is_dir():
        fail(f"no sources for {prog}")

# --- the overrides of docs/REPLACING-A-SERVICE.md ------------------------------------
# Each swaps shipping-service only, runs a program that exists, sets only variables the
# replacement reads, and builds from files that exist.
overrides = sorted((root / "examples" / "compose").glob("*.override.yml"))
if not overrides:
    fail("examples/compose has no *.override.yml (docs/REPLACING-A-SERVICE.md shows them)")
for path in overrides:
    over = yaml.safe_load(path.read_text()) or {}
    if "version" in over:
        fail(f"{path.name}: has a `version:` key")
    swapped = sorted(over.get("services", {}))
    if swapped != ["shipping-service"]:
        fail(f"{path.name}: overrides {swapped}, expected only shipping-service")
        continue
    svc = over["services"]["shipping-service"]
    cmd = svc.get("command") or []
    build = svc.get("build")
    if build:
        dockerfile = root / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        if not dockerfile.is_file():
            fail(f"{path.name}: no Dockerfile {dockerfile}")
            continue
        copied = {dst for _, dst in re.findall(r"^COPY\s+(\S+)\s+(\S+)", dockerfile.read_text(), re.M)}
        script = next((c for c in cmd if c.endswith(".py")), None)
        if not script or script not in copied:
            fail(f"{path.name}: command {cmd} runs nothing its Dockerfile copies ({sorted(copied)})")
        source = root / "examples" / "shipping-python" / "shipping_service.py"
    else:
        prog = cmd[0] if cmd else ""
        if prog != "example-shipping-c" or not (root / "examples" / "shipping-c" / "main.c").is_file():
            fail(f"{path.name}: command {cmd} is not a program of the image")
            continue
        source = root / "examples" / "shipping-c" / "main.c"
    text = source.read_text()
    for var in (svc.get("environment") or {}):
        if var not in text:
            fail(f"{path.name}: sets {var}, which {source.relative_to(root)} never reads")

for f in failures:
    print("FAIL -", f)
if not failures:
    print(f"ok - {len(services)} compose services; our {len(OURS) + 1} set only variables they read; "
          "ports, databases, topics and broker settings match the local stack; Dockerfile is classic")
sys.exit(1 if failures else 0)

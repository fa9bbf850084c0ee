#!/usr/bin/env bash
# tests/compose/run.sh: docker-compose.yml for real (`make compose-test`).
#
# As root, on a Debian bookworm machine that cannot pull images:
#   1. installs what is missing (docker.io, docker-compose, debootstrap, jq; the
#      Kafka and Apicurio jars through scripts/stack's Maven cache);
#   2. starts a PRIVATE dockerd (own data root, exec root and socket; no default
#      bridge, no iptables, no forwarding) with a watchdog that stops it by itself;
#   3. makes the `debian:bookworm` image with debootstrap (tarball cached under
#      ~/.cache/order-saga/docker) and builds our image from the Dockerfile and the
#      STAND-INS for apache/kafka, postgres and cp-schema-registry
#      (tests/compose/standins, tagged like the compose file's images);
#   4. runs the project's docker-compose.yml plus docker-compose.standins.yml with
#      docker-compose 1.29 (`up -d`, then polls until every service is healthy);
#   5. places two orders through the order-service's published port: tok_visa
#      must be CONFIRMED, tok_chargeDeclined CANCELLED / PAYMENT_FAILED with the
#      compensation done;
#   6. tears everything down, even on failure: containers, networks, volumes, the
#      engine, its mounts and its data root. The images are saved first (when
#      they changed) to ~/.cache/order-saga/docker/*-images.tar, so the next run
#      reuses their layers (--cache-from) and rebuilds only what changed.
#
# Environment: COMPOSE_TEST_TTL (seconds before the watchdog stops the engine,
# default 2400), COMPOSE_TEST_KEEP_CACHE=0 to not save the images,
# COMPOSE_TEST_KEEP_LOGS=1 to keep the logs in build-compose-test/logs (kept on
# failure anyway), STACK_CACHE.
#   tests/compose/run.sh --cleanup DIR   what the trap and the watchdog run
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SELF=$REPO/tests/compose/run.sh
CACHE=${STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/order-saga}
DCACHE=$CACHE/docker
BASE_TAR=$DCACHE/debian-bookworm-minbase.tar
# The images of the last run, whose layers the next build reuses (--cache-from):
# the stand-ins (rarely change) and ours (change with the sources), saved apart.
STANDIN_TAR=$DCACHE/standin-images.tar
SAGA_TAR=$DCACHE/saga-images.tar
DOCKER_BIN=/usr/bin/docker # not /usr/local/bin/docker: Debian's client matches its engine
COMPOSE_BIN=/usr/bin/docker-compose
DOCKERD_BIN=/usr/sbin/dockerd
TTL=${COMPOSE_TEST_TTL:-2400}
PROJECT=ordersagatest
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$REPO/scripts/kafka/pom.xml")
APICURIO_VERSION=2.5.11.Final
# The images as docker-compose.yml names them: the stand-ins get the same tags.
IMG_KAFKA=apache/kafka:3.9.1
IMG_POSTGRES=postgres:15.10-bookworm
IMG_REGISTRY=confluentinc/cp-schema-registry:7.7.1
IMG_JRE=order-saga-standin-jre:local
IMG_SAGA=order-saga:local
IMG_SAGA_BUILD=order-saga-build:cache
STANDIN_IMAGES=(debian:bookworm "$IMG_JRE" "$IMG_KAFKA" "$IMG_POSTGRES" "$IMG_REGISTRY")
SAGA_IMAGES=("$IMG_SAGA_BUILD" "$IMG_SAGA")

say() { echo "compose-test: $*"; }
die() {
    echo "compose-test: FAIL: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------
# cleanup: the engine and everything under its directory

# Pids of processes started from under DIR (dockerd, its containerd, the shims).
pids_under() {
    local dir=$1 p
    for p in /proc/[0-9]*; do
        { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$dir/" && echo "${p#/proc/}"
    done
    return 0
}

cleanup_dir() {
    local dir=$1 pid i m
    [ -d "$dir" ] || return 0
    [ -f "$dir/engine.dir" ] || { echo "compose-test: $dir is not a compose-test directory" >&2; return 1; }
    if [ -f "$dir/dockerd.pid" ]; then
        pid=$(cat "$dir/dockerd.pid")
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 150; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.2
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    for pid in $(pids_under "$dir"); do kill -KILL "$pid" 2>/dev/null || true; done
    sleep 0.5
    # overlay mounts, shm and network namespaces left by a killed engine
    for ((i = 0; i < 3; i++)); do
        for m in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
    done
    rm -rf "$dir" 2>/dev/null || { sleep 1; rm -rf "$dir"; }
    # the watchdog, unless we are it
    if [ -f "$dir.watchdog" ]; then
        pid=$(cat "$dir.watchdog")
        rm -f "$dir.watchdog"
        [ "${FROM_WATCHDOG:-0}" = 1 ] || { [[ "$pid" =~ ^[0-9]+$ ]] && kill -- "-$pid" 2>/dev/null || true; }
    fi
}

if [ "${1:-}" = --cleanup ]; then
    cleanup_dir "$2"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages and starts a private docker engine"

T0=$SECONDS
PHASE_START=$SECONDS
PHASE_NAME=""
PHASES=""
phase() {
    local now=$SECONDS
    [ -n "$PHASE_NAME" ] && PHASES+="$(printf '  %-10s %4ds' "$PHASE_NAME" $((now - PHASE_START)))"$'\n'
    [ -n "$PHASE_NAME" ] && say "phase $PHASE_NAME took $((now - PHASE_START))s"
    PHASE_NAME=$1
    PHASE_START=$now
    [ -n "$1" ] && say "phase $1 ..."
    return 0
}

# ---------------------------------------------------------------------------
phase deps

missing=""
for p in docker.io docker-compose debootstrap jq curl iproute2; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=" $p"
done
if [ -n "$missing" ]; then
    say "installing:$missing"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; } \
        >/tmp/order-saga-compose-apt.$$.log 2>&1 || {
        tail -n 5 /tmp/order-saga-compose-apt.$$.log >&2
        die "apt-get install$missing failed"
    }
    rm -f /tmp/order-saga-compose-apt.$$.log
fi
# The Kafka jars (and maven, a JRE) exactly as the local stack gets them.
"$REPO/scripts/stack" deps >/dev/null
APICURIO=$CACHE/apicurio-$APICURIO_VERSION
if [ ! -f "$APICURIO/.complete" ]; then
    say "fetching Apicurio Registry $APICURIO_VERSION (the schema registry stand-in) from Maven Central"
    mkdir -p "$APICURIO"
    timeout 900 mvn -B -q dependency:copy -Dtransitive=false \
        -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:zip:all" \
        -DoutputDirectory="$APICURIO" >"$APICURIO/maven.log" 2>&1 || die "maven could not fetch Apicurio; log: $APICURIO/maven.log"
    rm -rf "$APICURIO/app"
    unzip -q -o "$APICURIO/apicurio-registry-app-$APICURIO_VERSION-all.zip" -d "$APICURIO/app"
    rm -f "$APICURIO"/*.zip
    touch "$APICURIO/.complete"
fi
[ -f "$CACHE/kafka-$KAFKA_VERSION/.complete" ] || die "the Kafka jars are missing from $CACHE/kafka-$KAFKA_VERSION"

# ---------------------------------------------------------------------------
phase engine

WORK=$(mktemp -d /var/tmp/order-saga-compose.XXXXXX)
touch "$WORK/engine.dir"
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/data" "$WORK/exec"
SOCK=$WORK/docker.sock
export DOCKER_HOST=unix://$SOCK
# Never the user's own client configuration or a BuildKit-only path.
export DOCKER_CONFIG=$WORK/client DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

# The watchdog stops the engine and removes its directory after TTL seconds,
# whatever happens to this script.
setsid bash -c 'exec -a order-saga-compose-watchdog bash -c "sleep $1; FROM_WATCHDOG=1 exec \"$2\" --cleanup \"$3\"" _ "$@"' \
    _ "$TTL" "$SELF" "$WORK" >/dev/null 2>&1 </dev/null &
echo $! >"$WORK.watchdog"

OK=0
IMAGES_BUILT=0
teardown() {
    local rc=$?
    trap - EXIT INT TERM
    phase teardown
    if [ "${COMPOSE_TEST_KEEP_LOGS:-0}" = 1 ] && [ -S "$SOCK" ]; then
        compose logs --no-color >"$LOGS/compose.log" 2>&1 || true
        rm -rf "$REPO/build-compose-test/logs" && mkdir -p "$REPO/build-compose-test" &&
            cp -r "$LOGS" "$REPO/build-compose-test/" && say "logs kept in $REPO/build-compose-test/logs"
    fi
    if [ "$OK" != 1 ] && [ -S "$SOCK" ]; then
        say "state at failure:"
        compose ps 2>&1 | sed 's/^/  /' || true
        compose logs --no-color >"$LOGS/compose.log" 2>&1 || true
        compose logs --no-color --tail 12 2>&1 | cut -c1-300 | sed 's/^/  /' || true
        rm -rf "$REPO/build-compose-test/logs" && mkdir -p "$REPO/build-compose-test" &&
            cp -r "$LOGS" "$REPO/build-compose-test/" 2>/dev/null &&
            say "logs kept in $REPO/build-compose-test/logs"
    fi
    if [ -S "$SOCK" ]; then
        timeout 120 "$COMPOSE_BIN" "${COMPOSE_FILES[@]}" down -v --remove-orphans -t 10 >>"$LOGS/down.log" 2>&1 ||
            say "docker-compose down failed (the engine is stopped anyway)"
        if [ "$IMAGES_BUILT" = 1 ] && [ "${COMPOSE_TEST_KEEP_CACHE:-1}" = 1 ]; then
            save_images "$STANDIN_TAR" "$STANDIN_IDS" "${STANDIN_IMAGES[@]}"
            save_images "$SAGA_TAR" "$SAGA_IDS" "${SAGA_IMAGES[@]}"
        fi
    fi
    cleanup_dir "$WORK"
    phase ""
    say "phases:"
    printf '%s' "$PHASES"
    say "total $((SECONDS - T0))s"
    if [ "$OK" = 1 ] && [ "$rc" = 0 ]; then
        say "PASS"
    else
        say "FAIL (exit $rc)"
        [ "$rc" = 0 ] && rc=1
    fi
    exit "$rc"
}
COMPOSE_FILES=(-p "$PROJECT" --project-directory "$REPO" -f "$REPO/docker-compose.yml" -f "$REPO/tests/compose/docker-compose.standins.yml")
compose() { "$COMPOSE_BIN" "${COMPOSE_FILES[@]}" "$@"; }
image_ids() { "$DOCKER_BIN" image inspect -f '{{.Id}}' "$@" 2>/dev/null | tr '\n' ' ' || true; }
# save_images TAR IDS_AT_LOAD IMAGE...: only when one of them changed since the load.
save_images() {
    local tar=$1 before=$2
    shift 2
    [ -f "$tar" ] && [ "$(image_ids "$@")" = "$before" ] && return 0
    "$DOCKER_BIN" save -o "$tar.tmp" "$@" 2>>"$LOGS/save.log" && mv "$tar.tmp" "$tar" || rm -f "$tar.tmp"
}
STANDIN_IDS=""
SAGA_IDS=""
trap teardown EXIT
trap 'exit 130' INT TERM

"$DOCKERD_BIN" --data-root "$WORK/data" --exec-root "$WORK/exec" -H "$DOCKER_HOST" \
    --pidfile "$WORK/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
    --ip-masq=false --ip-forward=false --storage-driver=overlay2 >"$LOGS/dockerd.log" 2>&1 </dev/null &
for ((i = 0; i < 150; i++)); do
    "$DOCKER_BIN" version >/dev/null 2>&1 && break
    sleep 0.2
done
"$DOCKER_BIN" version >/dev/null 2>&1 || { tail -n 20 "$LOGS/dockerd.log" >&2; die "the private dockerd did not start"; }
say "private dockerd $("$DOCKER_BIN" version -f '{{.Server.Version}}') on $SOCK (stops by itself in ${TTL}s)"

# ---------------------------------------------------------------------------
phase images

for tar in "$STANDIN_TAR" "$SAGA_TAR"; do
    [ -f "$tar" ] || continue
    say "loading the images of the last run (layer cache) from $tar"
    "$DOCKER_BIN" load -q -i "$tar" >/dev/null || { say "could not load $tar; building from scratch"; rm -f "$tar"; }
done
STANDIN_IDS=$(image_ids "${STANDIN_IMAGES[@]}")
SAGA_IDS=$(image_ids "${SAGA_IMAGES[@]}")
if ! "$DOCKER_BIN" image inspect debian:bookworm >/dev/null 2>&1; then
    if [ ! -f "$BASE_TAR" ]; then
        say "debootstrap --variant=minbase bookworm (cached in $BASE_TAR)"
        mkdir -p "$DCACHE"
        debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$LOGS/debootstrap.log" 2>&1 ||
            { tail -n 5 "$LOGS/debootstrap.log" >&2; die "debootstrap failed"; }
        rm -rf "$WORK/rootfs/var/cache/apt/archives"/*.deb "$WORK/rootfs/var/lib/apt/lists"/*_Packages
        tar -C "$WORK/rootfs" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
        rm -rf "$WORK/rootfs"
    fi
    "$DOCKER_BIN" import "$BASE_TAR" debian:bookworm >/dev/null
fi

# build TAG CONTEXT [docker build options]: classic builder, host network for apt,
# the previous run's image of the same tag as cache. The classic builder follows
# only the first --cache-from image that matches, so options come first.
build() {
    local tag=$1 ctx=$2 log
    shift 2
    log=$LOGS/build-${tag//[\/:]/_}.log
    local t=$SECONDS
    if ! "$DOCKER_BIN" build --network host "$@" --cache-from "$tag" -t "$tag" "$ctx" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "docker build of $tag failed (log above)"
    fi
    say "built $tag ($((SECONDS - t))s$(grep -c 'Using cache' "$log" | sed 's/^0$//; s/.\+/, & steps cached/'))"
}

STANDINS=$REPO/tests/compose/standins
build "$IMG_JRE" "$STANDINS/jre"
CTX=$WORK/ctx
mkdir -p "$CTX/kafka" "$CTX/registry"
cp -a "$STANDINS/kafka/." "$CTX/kafka/"
cp -a "$CACHE/kafka-$KAFKA_VERSION/libs" "$CTX/kafka/libs"
cp "$REPO/scripts/kafka/log4j.properties" "$CTX/kafka/"
build "$IMG_KAFKA" "$CTX/kafka"
cp -a "$STANDINS/schema-registry/." "$CTX/registry/"
cp -a "$APICURIO/app" "$CTX/registry/app"
build "$IMG_REGISTRY" "$CTX/registry"
build "$IMG_POSTGRES" "$STANDINS/postgres"
rm -rf "$CTX"
# Our image from the real Dockerfile; its build stage is kept as a cache too (and
# matched first: recompiling costs more than the runtime stage's packages).
build "$IMG_SAGA_BUILD" "$REPO" --target build
build "$IMG_SAGA" "$REPO" --cache-from "$IMG_SAGA_BUILD"
IMAGES_BUILT=1
"$DOCKER_BIN" run --rm "$IMG_SAGA" sh -c 'id -u; for p in order-service inventory-service payment-service shipping-service notification-service outbox-relay sagactl; do command -v $p >/dev/null || echo "missing $p"; done' >"$LOGS/image-check.log" 2>"$LOGS/image-check.err" ||
    die "our image does not run: $(cat "$LOGS/image-check.err")"
[ "$(head -n1 "$LOGS/image-check.log")" != 0 ] || die "our image runs as root"
! grep -q missing "$LOGS/image-check.log" || die "our image lacks a program: $(grep missing "$LOGS/image-check.log")"
say "our image: $("$DOCKER_BIN" image inspect -f '{{.Size}}' "$IMG_SAGA" | awk '{printf "%.0f MB", $1 / 1e6}'), runs as uid $(head -n1 "$LOGS/image-check.log"), on PATH: $("$DOCKER_BIN" run --rm "$IMG_SAGA" ls /usr/local/bin 2>/dev/null | tr '\n' ' ')"

# ---------------------------------------------------------------------------
phase up

port_in_use() { [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]; }
TAKEN=" "
# Below the kernel's ephemeral range (as scripts/stack): no outgoing connection takes them.
EPHEMERAL_LO=32768
read -r EPHEMERAL_LO _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
[ "$EPHEMERAL_LO" -gt 12000 ] || EPHEMERAL_LO=32768
free_port() {
    local p
    while :; do
        p=$((10000 + RANDOM % (EPHEMERAL_LO - 10010)))
        [[ "$TAKEN" == *" $p "* ]] && continue
        port_in_use "$p" && continue
        TAKEN+="$p "
        echo "$p"
        return
    done
}
# Free host ports for everything the compose file publishes, through its own variables.
pick_ports() {
    local v
    for v in SAGA_ORDER_PORT SAGA_INVENTORY_PORT SAGA_PAYMENT_PORT SAGA_SHIPPING_PORT \
        SAGA_NOTIFICATION_PORT SAGA_RELAY_PORT SAGA_KAFKA_PORT SAGA_POSTGRES_PORT SAGA_REGISTRY_PORT; do
        export "$v=$(free_port)"
    done
}
export SAGA_BIND=127.0.0.1 SAGA_IMAGE_TAG=local
unset SCHEMA_REGISTRY_URL KAFKA_BOOTSTRAP_SERVERS DATABASE_URL LOG_LEVEL NOTIFY_SINK SMTP_URL SAGA_TIMEOUT \
    TOPIC_PARTITIONS POSTGRES_PASSWORD SAGA_DB_PASSWORD
# Another program on this machine may take a port between our check and the
# engine's bind: then start over on other ports (at most three times).
for attempt in 1 2 3; do
    pick_ports
    say "order API will be on 127.0.0.1:$SAGA_ORDER_PORT"
    compose up -d --no-build >"$LOGS/up.log" 2>&1 && break
    if [ "$attempt" -lt 3 ] && grep -q 'address already in use' "$LOGS/up.log"; then
        say "a host port was taken meanwhile ($(grep -o -m1 '127.0.0.1:[0-9]*: bind' "$LOGS/up.log")); again on other ports"
        compose down -v --remove-orphans -t 5 >>"$LOGS/down.log" 2>&1 || true
        continue
    fi
    cat "$LOGS/up.log" >&2
    die "docker-compose up failed"
done

# docker-compose 1.29 has no --wait: poll every container's health.
LONG_RUNNING=(kafka schema-registry postgres outbox-relay order-service inventory-service payment-service
    shipping-service notification-service)
deadline=$((SECONDS + 300))
while :; do
    waiting=""
    for s in "${LONG_RUNNING[@]}"; do
        id=$(compose ps -q "$s" 2>/dev/null)
        st=$([ -n "$id" ] && "$DOCKER_BIN" inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" 2>/dev/null || echo missing)
        [ "$st" = running/healthy ] || waiting+=" $s($st)"
    done
    [ -z "$waiting" ] && break
    [ $SECONDS -lt $deadline ] || die "not healthy after 300s:$waiting"
    sleep 2
done
init_id=$(compose ps -q kafka-init)
init_state=$("$DOCKER_BIN" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$init_id")
[ "$init_state" = "exited 0" ] || die "kafka-init: $init_state"
compose logs --no-color kafka-init >"$LOGS/kafka-init.log" 2>&1 || true
for t in orders inventory payments shipping notifications order.dlq inventory.dlq payment.dlq shipping.dlq notification.dlq; do
    grep -q "$t" "$LOGS/kafka-init.log" || die "kafka-init did not report the topic $t"
done
say "every service healthy; kafka-init made the topics and exited 0"

# ---------------------------------------------------------------------------
phase saga

API=http://127.0.0.1:$SAGA_ORDER_PORT
# The operator's bearer token, minted in the image with the secret auth-init made for this
# deployment (docs/DOCKER.md), into a header file: curl reads it with -H @file, so the
# token is on no command line.
TOKEN=$(compose exec -T order-service sagactl token mint --sub compose-test --role operator \
    --secret-file /run/auth/secret) || die "sagactl token mint failed in order-service"
AUTH=$LOGS/operator.header
(umask 077 && printf 'Authorization: Bearer %s\n' "$TOKEN" >"$AUTH")
# The secret is this deployment's own: a token signed with the development secret this
# repository once shipped (deploy/compose/dev-auth-secret) is refused.
DEV_TOKEN=$(compose exec -T order-service sh -c 'printf %s USRGjwmjmgZog/bPppjmBXEtDDwGVgQ2cinhnqQ2cju0vQ0/4CWpzpqNVUzaDhMg >/tmp/dev-secret &&
    sagactl token mint --sub compose-test --role operator --secret-file /tmp/dev-secret; rm -f /tmp/dev-secret') ||
    die "sagactl token mint failed in order-service"
code=$(printf 'Authorization: Bearer %s\n' "$DEV_TOKEN" |
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H @- "$API/orders?limit=1")
[ "$code" = 401 ] || die "a token signed with the published development secret got $code, not 401"
compose logs --no-color auth-init 2>&1 | grep -q 'auth-init: made a new secret' ||
    die "auth-init did not make a secret"
say "a token signed with the published development secret gets 401; auth-init made this deployment's secret"
order() {
    curl -fsS --max-time 10 "$API/orders" -H @"$AUTH" -H 'Content-Type: application/json' -d "$(printf '{"customer_id":"%s",
    "currency":"EUR","payment_token":"%s","items":[{"sku":"sku-book","quantity":1}],
    "shipping_address":{"recipient":"Ada Lovelace","line1":"Main Street 1",
    "city":"Utrecht","postal_code":"3511 AB","country":"NL"}}' "$1" "$2")" | jq -r .order_id
}
# Waits until the saga is over (as README's walkthrough), prints the order JSON.
saga_done() {
    local i
    for ((i = 0; i < 300; i++)); do
        if curl -fsS --max-time 5 -H @"$AUTH" "$API/orders/$1" >"$LOGS/order-$1.json" 2>/dev/null &&
            jq -e '.status != "PENDING" and .compensation != "in_progress"
                and any(.timeline[]; .event_type == "NotificationSent")' "$LOGS/order-$1.json" >/dev/null; then
            cat "$LOGS/order-$1.json"
            return 0
        fi
        sleep 0.2
    done
    cat "$LOGS/order-$1.json" >&2 || true
    return 1
}
OK_ID=$(order cust-alice tok_visa) || die "POST /orders failed"
BAD_ID=$(order cust-bob tok_chargeDeclined) || die "POST /orders failed"
say "placed $OK_ID (tok_visa) and $BAD_ID (tok_chargeDeclined)"
ok_json=$(saga_done "$OK_ID") || die "the saga of $OK_ID did not finish within 60s"
bad_json=$(saga_done "$BAD_ID") || die "the saga of $BAD_ID did not finish within 60s"
# sagactl in the image with the token through stdin, as docs/DOCKER.md shows (no token on
# the docker client's command line).
compose exec -T order-service sh -c 'SAGA_TOKEN=$(cat) sagactl get "$0"' "$OK_ID" <<<"$TOKEN" \
    >"$LOGS/sagactl-get.txt" 2>&1 || die "sagactl get $OK_ID in order-service failed: $(cat "$LOGS/sagactl-get.txt")"
grep -q CONFIRMED "$LOGS/sagactl-get.txt" || die "sagactl get $OK_ID does not say CONFIRMED"
summary() { jq -c '{status, reason, detail, compensation, timeline: [.timeline[] | "\(.service): \(.event_type)"]}'; }
say "tok_visa: $(summary <<<"$ok_json")"
say "tok_chargeDeclined: $(summary <<<"$bad_json")"
jq -e '.status == "CONFIRMED" and .compensation == "none"
    and any(.timeline[]; .event_type == "ShipmentScheduled")' <<<"$ok_json" >/dev/null ||
    die "order $OK_ID (tok_visa) is not CONFIRMED"
jq -e '.status == "CANCELLED" and .reason == "PAYMENT_FAILED" and .detail == "CARD_DECLINED"
    and .compensation == "done" and any(.timeline[]; .event_type == "InventoryReleased")
    and all(.timeline[]; .event_type != "PaymentAuthorized")' <<<"$bad_json" >/dev/null ||
    die "order $BAD_ID (tok_chargeDeclined) is not CANCELLED/PAYMENT_FAILED with its stock released"
# The events went through the schema registry (Confluent framing): it has their subjects.
subjects=$(curl -fsS --max-time 5 "http://127.0.0.1:$SAGA_REGISTRY_PORT/apis/ccompat/v7/subjects") ||
    die "the schema registry's published port does not answer"
jq -e 'any(.[]; . == "orders-io.ordersaga.events.OrderPlaced")' <<<"$subjects" >/dev/null ||
    die "the registry has no subject orders-io.ordersaga.events.OrderPlaced: $subjects"
# The notification-service logged both notices (NOTIFY_SINK=log).
compose logs --no-color notification-service >"$LOGS/notification.log" 2>&1 || true
for id in "$OK_ID" "$BAD_ID"; do
    grep -q "$id" "$LOGS/notification.log" || die "the notification-service's log does not mention $id"
done
say "CONFIRMED and CANCELLED/PAYMENT_FAILED with compensation done, through the containers"
OK=1

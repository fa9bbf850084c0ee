# Convenience front end; everything here is also reachable through cmake/ctest
# and scripts/stack directly. See README.md.
BUILD      ?= build
TEST_BUILD ?= build-test
GCC_BUILD  ?= build-gcc
FUZZ_SECONDS ?= 300
JOBS       ?= $(shell nproc)
STACK      := scripts/stack
MAKEFLAGS  += --no-print-directory

.PHONY: all deps build up down status test test-unit fuzz bench bench-serde bench-runtime bench-tracing bench-debezium bench-temporal format format-check docs compose-test contract chaos chaos-both chaos-cluster chaos-upgrade chaos-pg valgrind clean

all: build

deps:
	$(STACK) deps $(if $(filter 1,$(WATCH)),--watch) $(if $(filter 1,$(TRACING)),--tracing)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Start the whole local stack: Kafka, Postgres, the outbox relay and the five
# services (STACK_PROGRAMS), and wait until every service is ready.
# REGISTRY=1 also runs a schema registry (Confluent wire format instead of single-object).
# SECURE=1 secures Kafka: SASL/SCRAM over TLS (a private CA made for the stack) and
# ACLs per program, and runs the order API over https with a certificate of that CA
# (docs/LOCAL-STACK.md, "The secured stack"); a stack keeps the mode it was made with.
# REPLACE=shipping='python3 my_shipping.py' runs that command in place of shipping-service
# until `make down` (REPLACE=shipping= goes back to the built-in; several: export
# STACK_REPLACE_<SERVICE>=command each). docs/LOCAL-STACK.md, "Replacing a service".
# KAFKA_BROKERS=3 runs Kafka as a cluster of three KRaft nodes on loopback (each broker
# and controller), every topic with replication factor 3 and min.insync.replicas=2
# (docs/LOCAL-STACK.md, "A Kafka cluster"); a stack keeps the count it was made with.
# PG_STANDBY=1 runs the service databases on a PostgreSQL primary with a synchronous
# streaming standby (its own port); every program connects with a multi-host URL
# (target_session_attrs=read-write) and finds a promoted standby by itself
# (docs/LOCAL-STACK.md, "PostgreSQL with a standby"); a stack keeps it once made so.
# WATCH=1 also runs Debian's Prometheus on 127.0.0.1 (9090, or a free port; its URL is
# printed) with the alert rules of deploy/prometheus/alerts.yml, until `make down`
# (docs/LOCAL-STACK.md, "Watching the stack"; docs/RUNBOOKS.md).
# TRACING=1 also runs Jaeger (built once from the Go module proxy) on 127.0.0.1 and points
# every program at it: each saga is one trace, its UI's URL is printed (TRACING_UI_URL in
# stack.env), until `make down` (docs/OBSERVABILITY.md, "The tracing backend").
up: deps build
	$(STACK) up --no-deps --build $(BUILD) $(if $(filter 1,$(REGISTRY)),--registry) \
		$(if $(filter 1,$(SECURE)),--secure) $(if $(filter 1,$(WATCH)),--watch) \
		$(if $(filter 1,$(TRACING)),--tracing) \
		$(if $(KAFKA_BROKERS),--brokers $(KAFKA_BROKERS)) \
		$(if $(filter 1,$(PG_STANDBY)),--pg-standby) \
		$(if $(REPLACE),--replace '$(subst ','\'',$(REPLACE))')

down:
	$(STACK) down --build $(BUILD)

status:
	$(STACK) status --build $(BUILD)

# The full test suite: clang with ASan+UBSan and -Werror, libFuzzer targets run
# briefly, real Kafka, Postgres and schema registry started on free ports under
# $(TEST_BUILD)/test-stack and stopped at the end. The programs are also compiled
# once with gcc -Werror, whose warnings differ.
test:
	$(STACK) deps --tests
	cmake -S . -B $(GCC_BUILD) -DCMAKE_C_COMPILER=gcc -DSAGA_WERROR=ON -DSAGA_BUILD_TESTS=ON
	cmake --build $(GCC_BUILD) -j $(JOBS)
	cmake -S . -B $(TEST_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DSAGA_WERROR=ON -DSAGA_SANITIZE=ON -DSAGA_FUZZ=ON
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure --timeout 900

# The conformance kit (tests/contract/README.md) on every built-in service, each on
# a stack with only the relay and that service; REPLACE=shipping='command' checks that
# command in the service's place instead.
contract: build
ifeq ($(REPLACE),)
	cd $(BUILD) && ctest -R '^contract_' --output-on-failure
else
	r='$(subst ','\'',$(REPLACE))'; tests/contract/run "$${r%%=*}" --build $(BUILD) --replace "$${r#*=}"
endif

# Unit tests only: no Kafka, no Postgres.
test-unit:
	cmake -S . -B $(TEST_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DSAGA_WERROR=ON -DSAGA_SANITIZE=ON -DSAGA_FUZZ=ON
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -L unit

# Longer fuzzing: every libFuzzer target for FUZZ_SECONDS (default 300) each.
fuzz:
	cmake -S . -B $(TEST_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DSAGA_WERROR=ON -DSAGA_SANITIZE=ON -DSAGA_FUZZ=ON -DSAGA_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -L fuzz --timeout $$(( $(FUZZ_SECONDS) + 300 ))
	cmake -S . -B $(TEST_BUILD) -DSAGA_FUZZ_SECONDS=20 > /dev/null

# Benchmarks against the machine (optimized build, no sanitizers); numbers and
# targets in docs/BENCHMARKS.md.
bench-serde: build
	$(BUILD)/bin/bench_serde

# The relay and the consumer runtime on a Kafka + Postgres stack of their own.
bench-runtime: build
	scripts/bench relay
	scripts/bench consumer

# outbox-relay next to Debezium's embedded engine on the same rows (fetches Debezium
# from Maven Central once; needs a JDK for javac).
bench-debezium: build
	scripts/bench debezium

# The whole saga next to the same saga on Temporal, same machine, same load, same
# yardstick (builds the Temporal server from the Go module proxy once; needs Go 1.26;
# long: BENCH_SECONDS, BENCH_WARMUP, BENCH_ROUNDS shorten it; scripts/bench temporal --quick).
bench-temporal: build
	scripts/bench temporal

# The saga's CPU per order with span export off and on (docs/BENCHMARKS.md, "Tracing").
bench-tracing: build
	scripts/bench tracing

# The whole saga under load (bench/loadgen) next to the machine's limit (pgbench).
bench: build
	scripts/bench saga

# The relay and the five services under valgrind's memcheck through real sagas: fails on
# any memcheck error or definite leak (logs in $(BUILD)/valgrind-results/).
valgrind: build
	tests/valgrind/run --build $(BUILD)

# The chaos suite (docs/RELIABILITY.md): fourteen scenarios under steady load on a
# (secured) stack of its own, every invariant checked after each; CHAOS_ONLY='t_kafka'
# runs one, CHAOS_STRATEGY=cooperative-sticky rebalances cooperatively. The results
# table lands in $(BUILD)/chaos-results/report-<strategy>.md.
chaos: build
	tests/chaos/run --build $(BUILD)

# The chaos suite twice: eager, then cooperative-sticky rebalancing (both tables land in
# $(BUILD)/chaos-results/report-<strategy>.md).
chaos-both: build
	CHAOS_STRATEGY=eager tests/chaos/run --build $(BUILD); s=$$?; \
	CHAOS_STRATEGY=cooperative-sticky tests/chaos/run --build $(BUILD) && exit $$s

# The cluster scenarios of the chaos suite (15-17) on a stack with three Kafka brokers
# (replication factor 3, min.insync.replicas=2): the busiest leader killed, two brokers
# down at once, a rolling restart; duplicates and losses on the wire counted per event.
chaos-cluster: build
	CHAOS_BROKERS=3 tests/chaos/run --build $(BUILD)

# The rolling upgrade (chaos scenarios 19-20): the last release's programs, built from its
# git tag, swapped one at a time for the current build under load, then one back; with
# the registry's framing and with single-object framing (UPGRADE_FRAMING=registry|embedded
# for one). Needs the release tags (git fetch --tags). docs/RELEASING.md.
chaos-upgrade: build
	tests/chaos/upgrade --build $(BUILD)

# The PostgreSQL failover scenario of the chaos suite (18) on a stack whose databases run
# on a primary with a synchronous standby (scripts/stack up --pg-standby): the primary
# stopped -m immediate under load, the standby promoted, the old primary rewound into a
# standby; its table lands in $(BUILD)/chaos-results/report-<strategy>-pg.md.
chaos-pg: build
	CHAOS_PG_STANDBY=1 tests/chaos/run --build $(BUILD)

# docker-compose.yml for real (as root): a private Docker engine, our image from the
# Dockerfile, local stand-ins for the third-party images, two orders through the
# containers, everything torn down again. docs/DOCKER.md.
compose-test:
	tests/compose/run.sh

# Regenerate docs/EVENTS.md from schemas/ (a test checks it is current).
docs: build
	$(BUILD)/bin/sagactl schemas docs --dir schemas > docs/EVENTS.md

format: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) --target format

format-check: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) --target format-check

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(GCC_BUILD)

# Convenience front end; everything here is also reachable through cmake/ctest
# and scripts/stack directly. See README.md.
BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc)
STACK      := scripts/stack
MAKEFLAGS  += --no-print-directory

.PHONY: all deps build up down status test test-unit format format-check docs clean

all: build

deps:
	$(STACK) deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Start the whole local stack (Kafka, Postgres, and the suite's programs).
# REGISTRY=1 also runs a schema registry (Confluent wire format instead of single-object).
up: deps build
	$(STACK) up --no-deps --build $(BUILD) $(if $(filter 1,$(REGISTRY)),--registry)

down:
	$(STACK) down --build $(BUILD)

status:
	$(STACK) status --build $(BUILD)

# The full test suite: warnings as errors, ASan+UBSan, real Kafka and Postgres
# started on free ports under $(TEST_BUILD)/test-stack and stopped at the end.
test:
	$(STACK) deps --tests
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSAGA_WERROR=ON -DSAGA_SANITIZE=ON
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure --timeout 600

# Unit tests only: no Kafka, no Postgres.
test-unit:
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSAGA_WERROR=ON -DSAGA_SANITIZE=ON
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -L unit

# Regenerate docs/EVENTS.md from schemas/ (a test checks it is current).
docs: build
	$(BUILD)/bin/sagactl schemas docs --dir schemas > docs/EVENTS.md

format: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) --target format

format-check: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) --target format-check

clean:
	rm -rf $(BUILD) $(TEST_BUILD)

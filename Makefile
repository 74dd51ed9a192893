# sealrelay — developer entry points.  `make test` is what CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SHARED ?= ../shared
# `make test` runs the suite in this many worker processes (pytest-xdist; 0: in one process).
# Each test file stays on one worker (--dist loadfile): its module fixtures start once.
TEST_WORKERS ?= 2

.PHONY: resilience test lint typecheck contracts unit run bench bench-compare bench-calls calls bench-meetings meetings clean venv chaos chaos-fed groups-full fuzz

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -m "not long" -n $(TEST_WORKERS) --dist loadfile

run: $(STAMP)
	$(BIN)/sealrelay dev run

# `make bench` runs every registered benchmark module (benchmarks/harness.py MODULES).
# `make bench calls` runs only the calls benchmark (issue 17: call setup, relay-added latency
# per hop at 1 and 20 video calls, loss, datagrams forwarded per node CPU-second, a profile of
# the node; real node processes with udp_listen, separate load processes; then one call
# across two replicas on a redis-server, bridged and with its bind relayed; a few minutes):
# the goal `calls` after `bench` names the module for `bench` and does nothing itself.
# `make calls` or `make bench-calls` alone do the same. `make bench meetings` likewise runs
# only the meetings benchmark (issue 18: the SFU core's decisions, a meeting of 200 simulated
# participants on one node process with udp_listen, 4 speakers: join time, datagrams out,
# loss, relay-added latency, node CPU, rekey after leaves with the client key schedule; then a
# cascade over three node processes: bytes on each inter-node link; a few minutes);
# `make meetings`, `make bench-meetings`.
# BENCH_ARGS passes more options (e.g. --quick, --out DIR).
BENCH_NAMED := $(filter calls meetings,$(MAKECMDGOALS))
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_NAMED) $(BENCH_ARGS)

bench-calls: $(STAMP)
	$(BIN)/python -m benchmarks calls $(BENCH_ARGS)

calls: $(if $(filter bench,$(MAKECMDGOALS)),,bench-calls)
	@:

bench-meetings: $(STAMP)
	$(BIN)/python -m benchmarks meetings $(BENCH_ARGS)

meetings: $(if $(filter bench,$(MAKECMDGOALS)),,bench-meetings)
	@:

# This working tree's benchmarks against revision BASE, interleaved (base, head, base, head...)
# for BENCH_ROUNDS rounds of each module in BENCH_ONLY, on the short profile unless
# BENCH_PROFILE says full or quick; prints medians and head/base, writes compare.json
# (docs/operations.md, "Comparing two revisions"). BENCH_COMPARE_ARGS passes more options.
BASE ?= main
BENCH_ROUNDS ?= 3
BENCH_ONLY ?= node,federation,groupnet
BENCH_PROFILE ?= short
bench-compare: $(STAMP)
	$(BIN)/python -m benchmarks.compare --base $(BASE) --rounds $(BENCH_ROUNDS) \
		--only $(BENCH_ONLY) --profile $(BENCH_PROFILE) $(BENCH_COMPARE_ARGS)

# The runs of a minute or so (pytest marker "long": a peer domain down for 60 s, the sender's
# node killed during such an outage, a 60 s video call across two domains, a 60 s meeting of
# 200 over three domains (tests/integration/test_meeting_200.py), the calls
# benchmark's quick run). `make test` runs the short round of every fault instead (tests/resilience/test_federation_faults.py) and a
# 5 s call (tests/integration/test_calls_federated.py).
resilience: $(STAMP)
	$(BIN)/pytest -q -m long

# Cluster soak: node replicas on a Sentinel set, replica and Redis-primary kills in turn,
# for CHAOS_SECONDS (default 180); prints lost, duplicated and delivered counts.
# CHAOS_ARGS passes more options (e.g. --durability primary, --replicas 2).
# CHAOS_SCHEDULE=fed runs the schedule of faults between two domains instead (chaos-fed).
CHAOS_SECONDS ?= 180
CHAOS_SCHEDULE ?= cluster
CHAOS_MODULE := $(if $(filter fed,$(CHAOS_SCHEDULE)),fedchaos,chaos)
chaos: $(STAMP)
	CHAOS_SECONDS=$(CHAOS_SECONDS) $(BIN)/python -m tests.resilience.$(CHAOS_MODULE) $(CHAOS_ARGS)

# Faults between two domains: a partition (60 s), a black hole, 2 s latency, resets in the
# middle of a transaction and one-way cuts, in turn through a fault proxy, for CHAOS_SECONDS
# while each domain sends to the other; prints the delivery checker's table and, per fault,
# the time to the first delivery after it ends (limit 10 s). Exit 1 if the run is invalid.
chaos-fed: $(STAMP)
	CHAOS_SECONDS=$(CHAOS_SECONDS) $(BIN)/python -m tests.resilience.fedchaos $(CHAOS_ARGS)

# The groups issue's full check: 200 members over three domains, 100 messages from random
# members, each at every other member exactly once (about 3 minutes on 2 cores; `make test`
# runs the same test with 12 members).
groups-full: $(STAMP)
	SEALRELAY_GROUPS_FULL=1 $(BIN)/pytest -q -s tests/integration/test_groups.py -k many_members
	SEALRELAY_GROUPS_FULL=1 $(BIN)/pytest -q -s tests/integration/test_group_tokens.py
	SEALRELAY_GROUPS_FULL=1 $(BIN)/pytest -q -s tests/integration/test_group_tokens_client.py

# Coverage-guided fuzzing of every parser at a trust boundary (tests/fuzz): each target in
# turn for FUZZ_SECONDS (default 60), then a table of executions, executions/s, coverage
# and findings. FUZZ_TARGET=name runs one; FUZZ_ARGS passes more (e.g. --keep, to add new
# interesting inputs to tests/fuzz/corpus). `make test` replays the corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGET ?= all
FUZZ_STAMP := $(VENV)/.fuzz-installed
$(FUZZ_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench,fuzz]'
	touch $(FUZZ_STAMP)

fuzz: $(FUZZ_STAMP)
	$(BIN)/python -m tests.fuzz run $(FUZZ_TARGET) --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz

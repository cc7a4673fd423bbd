# extalerts developer tasks. Every target sets up .venv on first use, so `make demo` and
# `make test` work on a fresh machine with only Python 3.11+.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= rendered

.PHONY: help demo sandbox-story test contracts check lint typecheck render render-check golden schema bench clean

help:
	@echo "make demo          set up; validate, render, test monitors/; replay an incident; drill every rule in the sandbox"
	@echo "make test          set up and run the test suite (needs nothing beside the repository)"
	@echo "make contracts     rendered output and emulators against ../shared/contracts (or EXTALERTS_CONTRACTS_DIR)"
	@echo "make check         lint (ruff), typecheck (mypy --strict), test"
	@echo "make appinspect    package the Splunk app and vet it as Splunk Cloud does (AppInspect, offline)"
	@echo "make render        render monitors/ into $(OUT)/ (committed, reviewed in PRs)"
	@echo "make render-check  fail when $(OUT)/ or schema/ is stale"
	@echo "make golden        regenerate tests/golden/ (review the diff!)"
	@echo "make bench         start-up, render, push, replay, gzip and parallel replay benchmarks against baselines (BENCH_ARGS=--ten-million)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "extalerts needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The demo's incident: 90 minutes of traffic with four incidents, replayed through every rule.
DEMO_INCIDENTS := --scenario exception-storm@30m+4m --scenario invalid-url-flood@40m+6m \
	--scenario do-latency-spike@50m+5m --scenario script-silent@70m+15m

# The sandbox clock for the demo: the emulators evaluate what they store in Python, and at x100 a
# sandbox minute (0.6 s) leaves them room on a loaded 2-core machine; x600 drills fail on load alone.
DEMO_SPEED ?= 100

demo: $(STAMP)
	$(BIN)/extalerts validate monitors/
	$(BIN)/extalerts render --provider all --out build/demo monitors/
	$(BIN)/extalerts test --require-coverage
	$(BIN)/extalerts synth --out build/demo/incident.ndjson --minutes 90 --rpm 300 $(DEMO_INCIDENTS)
	$(BIN)/extalerts replay build/demo/incident.ndjson --report build/demo/replay.html
	$(BIN)/extalerts sandbox --spec monitors/ --speed $(DEMO_SPEED) -- $(MAKE) --no-print-directory sandbox-story

# The end-to-end story, run inside `extalerts sandbox` (which sets the environment): push the
# monitors and Logpush jobs, send the incident through both intakes (each send records the events
# as sent, shifted to the sandbox's clock: the archive of that traffic), verify every rule on both
# providers against those archives (exit 3 if one disagrees), then drill every rule.
SANDBOX_STATE := build/demo/sandbox-state.json
# verify's window over a recorded send: from its first event to 10 minutes after its last (every
# rule's delay then past), as --from and --to, once the sandbox's clock has got there.
DEMO_WINDOW = $(BIN)/python -c 'import datetime as d, json, sys; from extalerts.clock import Clock; \
	times = [json.loads(line)["EventTimestampMs"] for line in open(sys.argv[1])]; \
	first, last = min(times), max(times) + 600_000; Clock.from_env().sleep_until(last / 1000); \
	print(*(f"--{k}={d.datetime.fromtimestamp(ms / 1000, d.UTC).isoformat()}" for k, ms in (("from", first), ("to", last))))'
sandbox-story: $(STAMP)
	@test -n "$$EXTALERTS_TIME_SCALE" || (echo "run this inside: extalerts sandbox -- make sandbox-story" >&2; exit 1)
	rm -f $(SANDBOX_STATE)
	$(BIN)/extalerts push --provider datadog --yes --state-file $(SANDBOX_STATE) monitors/
	$(BIN)/extalerts push --provider splunk --yes --state-file $(SANDBOX_STATE) monitors/
	$(BIN)/extalerts push --provider logpush --yes --state-file $(SANDBOX_STATE) monitors/
	$(BIN)/extalerts send build/demo/incident.ndjson --provider datadog --yes --record build/demo/sent-datadog.ndjson
	$(BIN)/extalerts send build/demo/incident.ndjson --provider splunk --yes --record build/demo/sent-splunk.ndjson
	$(BIN)/extalerts verify --provider datadog --archive build/demo/sent-datadog.ndjson \
		$$($(DEMO_WINDOW) build/demo/sent-datadog.ndjson) --report build/demo/verify-datadog.html
	$(BIN)/extalerts verify --provider splunk --archive build/demo/sent-splunk.ndjson \
		$$($(DEMO_WINDOW) build/demo/sent-splunk.ndjson) --report build/demo/verify-splunk.html
	$(BIN)/extalerts drill --provider datadog --all
	$(BIN)/extalerts drill --provider splunk --all

# pytest with the given arguments. It exits 5 when it collects nothing; a suite that runs no test must not pass.
PYTEST = @$(BIN)/python -m pytest -q $(1); status=$$?; \
	if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$status

test: $(STAMP)
	$(call PYTEST)
	$(BIN)/extalerts test --require-coverage

# The providers' published contracts, read in place from ../shared/contracts beside the clone
# (EXTALERTS_CONTRACTS_DIR overrides it); when they are missing the run stops with one line saying so.
contracts: $(STAMP)
	$(call PYTEST,tests/contracts)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

render: $(STAMP)
	$(BIN)/extalerts render --provider all --out $(OUT) monitors/
	$(BIN)/extalerts schema > schema/spec-v1.json

render-check: $(STAMP)
	$(BIN)/extalerts render --provider all --out $(OUT) --check monitors/
	@$(BIN)/extalerts schema | diff -u schema/spec-v1.json - || (echo "schema/spec-v1.json is stale: run make render" >&2; exit 1)

golden: $(STAMP)
	EXTALERTS_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/test_golden.py

# Splunk Cloud installs a private app only once AppInspect passes it; .ci/appinspect.py fails on any
# failure or error, and on a warning the README's "Splunk Cloud vetting" note does not explain.
.PHONY: appinspect
appinspect: $(STAMP)
	$(BIN)/extalerts package --provider splunk --out build/appinspect/extalerts_workers.tgz monitors/
	$(BIN)/python .ci/appinspect.py build/appinspect/extalerts_workers.tgz --report build/appinspect/report.json

schema: $(STAMP)
	$(BIN)/extalerts schema > schema/spec-v1.json

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache

# LevAutoFix developer commands. `make demo` and `make test` do all set-up themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo scan-sample test setup lint format bench

# The pinned Claude Code CLI the demo runs against its scripted model without a login.
DEMO_CLAUDE := $(VENV)/claude/node_modules/.bin/claude

# Start the main job on a fresh machine: the whole loop on this machine.
demo: $(BIN)/autofix $(DEMO_CLAUDE)
	$(BIN)/autofix demo

# What the agent alone reports for the shipped sample log.
scan-sample: $(BIN)/autofix
	$(BIN)/autofix-agent scan agent/samples/pa-error.log

$(BIN)/autofix $(DEMO_CLAUDE):
	bash tests/setup.sh --runtime

# Install everything the tests drive (apt, npm, pip), lint and type-check, and run the whole suite.
test: setup lint
	$(BIN)/pytest -q

setup:
	bash tests/setup.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy agent console

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python tests/bench/bench_agent.py
	$(BIN)/python tests/bench/bench_latency.py
	$(BIN)/python tests/bench/bench_ingest.py --batch 500
	$(BIN)/python tests/bench/bench_store.py
	$(BIN)/python tests/bench/bench_console.py
	$(BIN)/python tests/bench/bench_tui.py
	$(BIN)/python tests/bench/bench_team.py

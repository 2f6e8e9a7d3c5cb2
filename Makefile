# Two entry points: `make serve` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORPUS ?= data/corpus
# your own folder gets an index of its own: the demo index is never replaced by it
ifeq ($(CORPUS),data/corpus)
INDEX  ?= var/index
else
INDEX  ?= var/indexes/$(notdir $(abspath $(CORPUS)))
endif
HOST   ?= 127.0.0.1
PORT   ?= 8000
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install model index serve check test browser wrk eval bench soak clean

# constraints.txt pins every transitive dependency to the versions the tests ran with.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

model: install
	$(BIN)/semsearch model build

# the first time a full build; then a sync, which reads the folder and embeds only what changed
index: model
	if [ -e $(INDEX) ]; then $(BIN)/semsearch sync $(CORPUS) --index $(INDEX); \
	else $(BIN)/semsearch index $(CORPUS) --out $(INDEX); fi

serve: index
	$(BIN)/semsearch serve --index $(INDEX) --host $(HOST) --port $(PORT)

# Playwright drives the machine's Debian chromium; it never downloads a browser of its own.
browser:
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# Lint, format, the import contracts and the types (config in pyproject.toml): fast, so first.
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: install check model browser
	$(BIN)/python -m pytest

# Full evaluation sets (about 25 minutes, and 20 more the first time to index SciFact): prints the
# quality table and writes it into docs/quality.md.
eval: model
	$(BIN)/python bench/quality.py

# wrk, a C load generator, so the client does not eat the server's cores (Debian package).
wrk:
	command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }

# Speed and memory: encoder paths, vector index by size, HTTP latency under load, both backends.
bench: index wrk
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/index_speed.py
	$(BIN)/python bench/ann.py
	$(BIN)/python bench/lexical.py
	$(BIN)/python bench/living.py add
	$(BIN)/python bench/living.py concurrent
	$(BIN)/python bench/http_load.py --index $(INDEX)
	$(BIN)/python bench/request_cost.py --index $(INDEX)
	$(BIN)/python bench/search_cpu.py --index $(INDEX)
	$(BIN)/python bench/wrk_load.py --index $(INDEX)
	$(BIN)/python bench/backends.py

# Ten minutes of mixed load with 300 idle connections held open: errors and memory growth.
soak: index
	$(BIN)/python bench/soak.py --index $(INDEX)

clean:
	rm -rf $(VENV) var .pytest_cache

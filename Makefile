# Two commands on a fresh clone: `make up` and `make test`. Each (re)creates
# .venv from pyproject.toml by itself; nothing else needs installing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up demo test test-loaded test-fast test-field test-cluster test-soak soak bench messages postgres promtool clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/cmcoord up

demo: $(STAMP)
	$(BIN)/cmcoord up --demo

# The store tests also run on PostgreSQL: install Debian's server when missing
# (the tests start their own throwaway cluster; nothing is configured system-wide).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL (Debian package) for the database tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# The alert rules' tests and the check of each service's /metrics use promtool: install
# Debian's prometheus package when missing (the binaries only; no server is started).
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing promtool (Debian's prometheus package) for the alert rule and metrics tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# Four workers (pytest-xdist) on two cores, a test module per worker: the suite mostly waits on
# processes, the network and the clock of Telegram's limits (it takes as long with a core kept busy).
test: $(STAMP) postgres promtool
	$(BIN)/python -m mypy  # the bot, strictly ([tool.mypy] in pyproject.toml)
	$(BIN)/python -m pytest -n 4 --dist loadfile --durations=10

# The same suite on a machine whose other work takes a core: a process spinning for the whole run.
test-loaded: $(STAMP) postgres promtool
	$(BIN)/python -m pytest -n 4 --dist loadfile --durations=10 --cpu-hog

# Faults as the field brings them, each minutes of processes, locks and waits (CI runs it after `make test`).
test-field: $(STAMP)
	$(BIN)/python -m pytest -m field tests/integration  # one at a time: each fault's timing is what it checks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 4 --dist loadfile -m "not slow and not cluster and not soak and not field"

# Scale-out under faults: three NATS nodes, PostgreSQL, two processes of each service (minutes).
test-cluster: $(STAMP) postgres
	$(BIN)/python -m pytest -m cluster tests/cluster

# A month in the field on a simulated clock: the demo stack, 30 days in two-hour steps (minutes).
test-soak: $(STAMP)
	$(BIN)/python -m pytest -m soak tests/soak

soak: test-soak

bench: $(STAMP)
	$(BIN)/python -m tests.bench

# After changing the bot's texts or the services' notices (shared/notices.py): refresh the
# templates and the French and Arabic catalogues, then translate the new entries (a unit
# test lists any missing).
LOCALES := shared/locales
messages: $(STAMP)
	$(BIN)/pybabel extract -k _:1,1t -k _:1,2,3t -k __ --no-location --omit-header -o $(LOCALES)/messages.pot services/bot
	$(BIN)/pybabel update --no-fuzzy-matching --width 100 -i $(LOCALES)/messages.pot -d $(LOCALES)
	$(BIN)/python -m shared.notices $(LOCALES)/notices.pot
	$(BIN)/pybabel update --no-fuzzy-matching --width 100 -D notices -i $(LOCALES)/notices.pot -d $(LOCALES)

clean:
	rm -rf $(VENV) .cmcoord bench-results.json

# Two commands for a fresh machine:  `make run`  and  `make test`.  See README.md.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export FLASK_APP := wsgi

.PHONY: run test setup db seed lint format bench browser-deps clean messages

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The translation catalogues (.po, committed) compiled to .mo (build output, git-ignored).
setup: $(STAMP)
	$(BIN)/pybabel compile --statistics -d directory/translations

## After changing text in code or templates: extract it and merge it into each catalogue, then
## translate the new entries in directory/translations/*/LC_MESSAGES/messages.po.
messages: setup
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ -k lazy_gettext -k _n:1,2 -k lazy_ngettext:1,2 \
	  --no-wrap --sort-by-file --project "LDN Directory" -o directory/translations/messages.pot .
	$(BIN)/pybabel update --no-wrap --no-fuzzy-matching --ignore-obsolete -i directory/translations/messages.pot \
	  -d directory/translations

db: setup
	DIRECTORY_ENV=development $(BIN)/flask init-db
	DIRECTORY_ENV=development $(BIN)/flask seed

## Serve the app at http://127.0.0.1:5000 on SQLite (instance/directory.db) with sample data.
run: db
	DIRECTORY_ENV=development $(BIN)/flask run --host 127.0.0.1 --port 5000

## Debian's chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "Browser tests need chromium: sudo apt-get install -y chromium"; fi; }

## Everything: lint and types, the whole suite on SQLite, then the whole suite again (browser
## journeys included) on PostgreSQL when TEST_DATABASE_URL is set.
test: setup browser-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	env -u TEST_DATABASE_URL $(BIN)/pytest
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
	  echo "== again on PostgreSQL: $$TEST_DATABASE_URL"; \
	  $(BIN)/pytest; \
	fi

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts

# `make run`: set up and serve on http://127.0.0.1:8000 (gunicorn, gevent workers).
# `make test`: set up and run every test. See README.md.
# `make test-fast`: the unit and API tests alone, on SQLite, for the inner loop.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast lint bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.requirements: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.requirements-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.requirements

.env:
	$(BIN)/python scripts/write-env.py

run: $(VENV)/.requirements .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createcachetable
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py recover_streams
	$(BIN)/gunicorn -c gunicorn.conf.py chatsite.wsgi

test: $(VENV)/.requirements-dev
	./scripts/system-deps.sh
	$(BIN)/python -m pytest

# In-process tests only: no browser (marker browser), nothing that starts gunicorn, nginx,
# PostgreSQL or Redis (marker slow: the reliability, scale-out and over-gunicorn security tests).
test-fast: $(VENV)/.requirements-dev
	DATABASE_URL=sqlite:///$(CURDIR)/db.sqlite3 $(BIN)/python -m pytest -q \
		-m "not browser and not slow" --ignore=tests/browser --ignore=tests/scaleout

lint: $(VENV)/.requirements-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CHATSITE_TESTING=1 $(BIN)/mypy accounts attachments audit chatsite conversations governance review
	$(BIN)/lint-imports

bench-quick: $(VENV)/.requirements-dev
	$(BIN)/python -m bench.run_all --quick

clean:
	rm -rf $(VENV) staticfiles test-artifacts .pytest_cache

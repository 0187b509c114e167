# REX — run `make` for the list of targets.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export DJANGO_SETTINGS_MODULE := rex_project.settings

.DEFAULT_GOAL := help
.PHONY: help install demo run worker beat flower migrate test lint bench

help: ## Show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv and install REX with its dev tools

migrate: $(VENV)/.installed ## Apply database migrations and install the beat schedule
	$(PY) manage.py migrate --no-input
	$(PY) manage.py setup_periodic_tasks

demo: migrate ## The flywheel end to end: a simulated world, K weeks of missions, webhooks, training, A/B, report
	$(PY) manage.py simulate

run: migrate ## Start web, worker, beat and Flower together (Procfile, honcho)
	$(PY) manage.py collectstatic --no-input -v0
	$(VENV)/bin/honcho start -f Procfile -p $(PORT)

worker: $(VENV)/.installed ## Start one Celery worker on every REX queue
	$(VENV)/bin/celery -A rex_project worker -c 2 -l INFO

beat: $(VENV)/.installed ## Start celery-beat with the database scheduler
	$(VENV)/bin/celery -A rex_project beat -S django_celery_beat.schedulers:DatabaseScheduler -l INFO

flower: $(VENV)/.installed ## Start Flower (basic auth from FLOWER_BASIC_AUTH) on :5555
	$(VENV)/bin/celery -A rex_project flower --address=127.0.0.1 --port=5555

test: $(VENV)/.installed ## Run the test suite (embedded default, or the services in the environment)
	$(VENV)/bin/pytest

lint: $(VENV)/.installed ## ruff lint and format check, plus missing migrations
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

bench: migrate ## Run the benchmarks under bench/ and print their figures
	$(PY) bench/run.py

# Everyday commands. `make demo` and `make test` work on a fresh machine (they set up first).
PY := .venv/bin/python
HOME_DIR ?= .fundtrail

.PHONY: setup setup-full demo test test-fast screenshots bench lint serve clean

setup:
	scripts/setup.sh

setup-full:
	scripts/setup.sh --full

demo: setup
	.venv/bin/fundtrail demo --home $(HOME_DIR)

test: setup-full
	scripts/test.sh

test-fast:
	.venv/bin/pytest -q -m "not node and not browser and not slow"

screenshots: setup-full   # rewrite docs/screenshots from the browser tests (tests alone write to a temporary folder)
	FUNDTRAIL_REFRESH_SCREENSHOTS=1 .venv/bin/pytest -q tests/web/test_browser.py

bench: setup-full
	$(PY) bench/run_all.py

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy

serve:
	.venv/bin/fundtrail serve --home $(HOME_DIR)

clean:
	rm -rf .venv $(HOME_DIR) .pytest_cache build dist

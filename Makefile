# The two commands of the README quick start, and the pieces they are made of.
# Each installs what it needs: uv (pinned, in .tools/) and the locked environment in .venv/.

UV_VERSION := 0.13.8
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PYTEST_ARGS ?=

.PHONY: demo test lint install install-dev testbed-build ui bench

demo: install  ## Run the bundled 4-stage demo DAG on this machine (local executor, local MLflow).
	$(UV) run --frozen --no-sync concurrent demo

test: install-dev lint testbed-build  ## Lint, type-check and run the whole test suite.
	$(UV) run --frozen --no-sync pytest $(PYTEST_ARGS)

lint: install-dev
	$(UV) run --frozen --no-sync ruff check src tests bench scripts
	$(UV) run --frozen --no-sync ruff format --check src tests bench scripts
	$(UV) run --frozen --no-sync mypy

# Every benchmark side by side (bench/harness.py): bench/RESULTS.md, bench/results.json and PNG plots. Slow (an
# hour or more on 2 cores); BENCH_ARGS="--only p1,p3 --rounds 1" for part of it. Prefect and PySpark go into
# venvs of their own under .bench/ (bench/envs.py); matplotlib comes with the `bench` dependency group.
BENCH_ARGS ?=
bench: install-dev
	$(UV) sync --frozen --group bench
	$(UV) run --frozen --no-sync python -m bench $(BENCH_ARGS)

# The k8s tests' control plane: binaries built from the Go module proxy once, then cached (~7 min cold).
testbed-build: install-dev
	scripts/k8s-testbed build

install: $(UV) ui
	$(UV) sync --frozen --no-dev --inexact

install-dev: $(UV) ui
	$(UV) sync --frozen

# The web UI (React + TypeScript, built with Vite) goes into the package's static files; rebuilt only when
# its sources change. npm installs exactly ui/package-lock.json from the registry.
UI_BUILT := src/concurrent_mlflow/server/static/index.html
UI_SOURCES := $(shell find ui/src -type f 2>/dev/null) ui/index.html ui/vite.config.ts ui/tsconfig.json

ui: $(UI_BUILT)

$(UI_BUILT): ui/node_modules/.package-lock.json $(UI_SOURCES)
	cd ui && npm run build

ui/node_modules/.package-lock.json: ui/package-lock.json ui/package.json
	cd ui && npm ci --no-audit --no-fund

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

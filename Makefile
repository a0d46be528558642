# The two commands of the README quick start, and the pieces they are made of.
# Each installs what it needs: uv (pinned, in .tools/) and the locked environment in .venv/.

UV_VERSION := 0.13.8
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PYTEST_ARGS ?=

.PHONY: demo test lint install install-dev testbed-build

demo: install  ## Run the bundled 4-stage demo DAG on this machine (local executor, local MLflow).
	$(UV) run --frozen --no-sync concurrent demo

test: install-dev lint testbed-build  ## Lint, type-check and run the whole test suite.
	$(UV) run --frozen --no-sync pytest $(PYTEST_ARGS)

lint: install-dev
	$(UV) run --frozen --no-sync ruff check src tests bench scripts
	$(UV) run --frozen --no-sync ruff format --check src tests bench scripts
	$(UV) run --frozen --no-sync mypy

# The k8s tests' control plane: binaries built from the Go module proxy once, then cached (~7 min cold).
testbed-build: install-dev
	scripts/k8s-testbed build

install: $(UV)
	$(UV) sync --frozen --no-dev --inexact

install-dev: $(UV)
	$(UV) sync --frozen

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

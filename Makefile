# GridTwin: `make run` and `make test` are all a newcomer needs (see README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
PORT   ?= 8888
MLFLOW_PORT ?= 5000
export MLFLOW_PORT  # MLflow links in reports and dashboards follow it (tracking.ui_url)
JOBS   ?= 2
DASH_PORT ?= 8866

.PHONY: install lint run daily dashboards test bench lab mlflow mlflow-server kernel clean distclean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

# The environment is rebuilt only when pyproject.toml or constraints.txt changes (the stamp carries their hash);
# constraints.txt pins every version, so two machines install the same numbers.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "GridTwin needs python3 >= 3.11 (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name gridtwin --display-name "GridTwin (.venv)" >/dev/null
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)  ## create .venv and install GridTwin with its test extras, register the gridtwin kernel

run: install  ## the full pipeline: data, 20 models trained and judged, MLflow runs and registry, reports
	$(BIN)/gridtwin pipeline run full --jobs $(JOBS)
	@echo "reports: data/reports/full/latest/index.html   models: make mlflow (http://127.0.0.1:$(MLFLOW_PORT))"

daily: install  ## the daily operations report on the store's most recent day (pipelines/daily.yaml)
	$(BIN)/gridtwin pipeline run daily
	@echo "report: data/reports/daily/latest/index.html"

lint: install  ## ruff and the import-linter layer contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint  ## lint, then every test (benchmarks excluded) on $(JOBS) workers; the 30 slowest are listed at the end
	$(BIN)/python -m pytest --durations=30 -n $(JOBS)

bench: install  ## benchmarks: they print their figures (see README "Performance"); bench_models needs `make run` first
	$(BIN)/python tests/benchmarks/bench_ingest.py
	$(BIN)/python tests/benchmarks/bench_features.py
	$(BIN)/python tests/benchmarks/bench_validate.py
	$(BIN)/python tests/benchmarks/bench_small_frames.py
	$(BIN)/python tests/benchmarks/bench_simulate.py
	$(BIN)/python tests/benchmarks/bench_pipeline.py --jobs $(JOBS)
	$(BIN)/python tests/benchmarks/bench_models.py
	$(BIN)/python tests/benchmarks/bench_collect.py
	$(BIN)/python tests/benchmarks/bench_collect_flood.py

lab: install  ## JupyterLab on 127.0.0.1 with the gridtwin kernel
	$(BIN)/jupyter lab --ip 127.0.0.1 --port $(PORT) --no-browser $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

dashboards: install  ## the six Voila dashboards on 127.0.0.1:$(DASH_PORT) (landing page /voila/render/index.ipynb)
	$(BIN)/gridtwin dashboards --port $(DASH_PORT)

mlflow: install  ## MLflow UI on the project's store (127.0.0.1 only)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT)

mlflow-server: install  ## shared MLflow server backed by PostgreSQL (MLFLOW_BACKEND=postgresql+psycopg://...), 127.0.0.1:$(MLFLOW_PORT)
	$(BIN)/gridtwin mlflow-server --port $(MLFLOW_PORT) $(if $(MLFLOW_BACKEND),--backend-store-uri $(MLFLOW_BACKEND))

kernel: install  ## also register the kernel for your user's Jupyter (outside .venv)
	$(BIN)/python -m ipykernel install --user --name gridtwin --display-name "GridTwin (.venv)"

clean:  ## remove generated data (store, features, reports, workspaces); keeps .venv and mlruns
	rm -rf data/store data/features data/reports data/workspaces mlruns/workspaces

distclean: clean  ## also remove .venv
	rm -rf $(VENV)

# The two quick-start commands of the README: `make quickstart` and `make test`.
PYTHON ?= python3
QUICKSTART_OUT ?= build/quickstart

.PHONY: install install-test chromium java quickstart test lint

install:
	$(PYTHON) -m pip install --quiet .

install-test:
	$(PYTHON) -m pip install --quiet '.[test]'

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing Debian's Java 17 for the Spark tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

# Run the bundled quickstart notebook headless on the embedded DuckDB, with lineage on,
# then print what it computed and recorded.
quickstart: install
	rm -rf $(QUICKSTART_OUT) && mkdir -p $(QUICKSTART_OUT)
	cp -r example_notebooks/. $(QUICKSTART_OUT)/
	cd $(QUICKSTART_OUT) && nbgov run --print-outputs 01_quickstart.ipynb
	nbgov show $(QUICKSTART_OUT)/01_quickstart.ipynb
	nbgov verify $(QUICKSTART_OUT)/01_quickstart.ipynb

# Everything the suite needs (Chromium, the package with its test extra), then the suite.
test: chromium java install-test
	@$(PYTHON) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi; \
	exit $$status

lint:
	$(PYTHON) -m mypy

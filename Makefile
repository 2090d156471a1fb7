# The README's two commands, run inside an activated virtualenv:
#   make quickstart   install nbgov, run the quickstart notebook headless, show its lineage
#   make test         install the test extra and the browser, run the whole suite
# Each installs what it needs: Debian packages (Node.js to build the sidebar, Chromium
# for the browser tests, Java 17 for the Spark tests) when they are missing, then nbgov
# from a wheel built once.
PYTHON ?= python3
PIP = $(PYTHON) -m pip --disable-pip-version-check --quiet
# The installed command next to the interpreter (not the source tree's package).
NBGOV = $(shell $(PYTHON) -c 'import os, sys; print(os.path.join(os.path.dirname(sys.executable), "nbgov"))')
QUICKSTART_OUT ?= build/quickstart

VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' nbgov/_version.py)
WHEEL := build/dist/nbgov-$(VERSION)-py3-none-any.whl
# What the wheel is built from (not the sidebar bundle it writes into nbgov/labextension).
WHEEL_SOURCES := pyproject.toml README.md labextension/package.json labextension/yarn.lock \
	$(shell find nbgov labextension/src labextension/style -type f \
	  -not -path 'nbgov/labextension/*' -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: quickstart test install install-test system-packages node chromium java venv-check lint

# Run the bundled quickstart notebook headless on the embedded DuckDB, with lineage on,
# then print what it computed and recorded.
quickstart: install
	rm -rf $(QUICKSTART_OUT) && mkdir -p $(QUICKSTART_OUT)
	cp -r example_notebooks/. $(QUICKSTART_OUT)/
	cd $(QUICKSTART_OUT) && $(NBGOV) run --print-outputs 01_quickstart.ipynb
	$(NBGOV) show $(QUICKSTART_OUT)/01_quickstart.ipynb
	$(NBGOV) verify $(QUICKSTART_OUT)/01_quickstart.ipynb

# Everything the suite needs (system packages, the package with its test extra), then
# the suite; pytest's "no tests collected" (exit 5) counts as a failure.
# Two worker processes, each taking a whole test file at a time (module fixtures stay
# whole): the suite waits on kernels, Spark's JVM and the browser much of the time.
PYTEST_WORKERS ?= -n 2 --dist loadfile
test: system-packages install-test
	@$(PYTHON) -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi; \
	exit $$status

# The wheel a user would get from `pip install nbgov` (it builds the sidebar with Node.js).
$(WHEEL): $(WHEEL_SOURCES) | venv-check node
	@echo "building $(WHEEL) (Python package and JupyterLab sidebar)"
	$(PIP) wheel --no-deps --wheel-dir build/dist .

# pip keeps an installed wheel of the same version: reinstall this build over it.
install: $(WHEEL)
	$(PIP) install "$(WHEEL)"
	$(PIP) install --no-deps --force-reinstall "$(WHEEL)"

install-test: $(WHEEL)
	$(PIP) install "$(WHEEL)[test]"
	$(PIP) install --no-deps --force-reinstall "$(WHEEL)"

# Debian packages the test suite needs beyond Node.js (which the wheel's build asks for).
system-packages: chromium java

# $(call apt-install,COMMAND,PACKAGES): install PACKAGES with apt when COMMAND is missing.
define apt-install
	@command -v $(1) >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { echo "make: '$(1)' is missing: install $(2) with your system's package manager" >&2; exit 2; }; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing $(2) (apt) for '$(1)'"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $(2) >/dev/null; }
endef

# The sidebar's bundler (rspack) needs Node.js ^20.19 or >=22.12.
node:
	$(call apt-install,node,nodejs)
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a > 22 ? 0 : 1)' || { \
	  echo "make: Node.js $$(node --version) cannot build the sidebar: it needs 20.19+ or 22.12+ (https://nodejs.org)" >&2; exit 2; }

chromium:
	$(call apt-install,chromium,chromium)

# PySpark 4 starts Spark's JVM with JAVA_HOME's `java` when there is one, else the one on
# PATH, and needs Java 17+.
JAVA = $$([ -x "$$JAVA_HOME/bin/java" ] && echo "$$JAVA_HOME/bin/java" || echo java)
java:
	$(call apt-install,$(JAVA),openjdk-17-jre-headless)
	@major=$$($(JAVA) -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p'); \
	[ "$${major:-0}" -ge 17 ] || { \
	  echo "make: $$($(JAVA) -version 2>&1 | head -1) cannot run Spark: it needs Java 17+ (openjdk-17-jre-headless)" >&2; exit 2; }

# pip refuses (or pollutes the system) outside a virtualenv: say what to do instead.
venv-check:
	@$(PYTHON) -c 'import os, sys; sys.exit(sys.prefix == sys.base_prefix and not os.environ.get("CONDA_PREFIX"))' || { \
	  echo "make: no virtualenv is active; first run: python3 -m venv .venv && . .venv/bin/activate" >&2; exit 2; }

lint:
	$(PYTHON) -m mypy

# nordiqd — the two commands a new user needs: `make demo` and `make test`.
#
# TORCH_SPEC picks the torch build: the default is the CPU wheel (no multi-GB CUDA
# download); override it, e.g. `make TORCH_SPEC=torch==2.13.0+cu128 test`, for a GPU host.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS ?= --disable-pip-version-check -q
PYTEST_ARGS ?=
EXTRAS ?= test

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all install test test-deb lint demo deb clean

all: test

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) "$(TORCH_SPEC)"
	$(BIN)/pip install $(PIP_FLAGS) -e '.[$(EXTRAS)]' "$(TORCH_SPEC)"
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# ruff; mypy on the three packages, --strict on the wire and the supervisor; the import
# contracts of .importlinter (tests/unit/test_code_shape.py checks cycles and sizes).
lint: $(STAMP)
	$(BIN)/ruff check ipc supervisor nordiqd tests bench
	$(BIN)/mypy
	$(BIN)/mypy --strict -p ipc -p supervisor
	$(BIN)/lint-imports --no-logo --no-cache

demo: $(STAMP)
	$(BIN)/nordiqd demo

# The Debian package (packaging/README.md): dist/nordiqd_<version>_<arch>.deb, and its
# install/run/upgrade/remove/purge test on this machine (root; minutes; not in `make test`).
DEB_DIR ?= dist
DEB_VERSION ?= $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' nordiqd/__init__.py)
DEB_FILE = $(DEB_DIR)/nordiqd_$(DEB_VERSION)_$(shell dpkg --print-architecture 2>/dev/null).deb

deb: $(STAMP)
	DEB_VERSION="$(DEB_VERSION)" TORCH_SPEC="$(TORCH_SPEC)" BUILD_PYTHON=$(BIN)/python \
		packaging/build-deb.sh $(DEB_DIR)

test-deb: deb
	NORDIQD_DEB=$(DEB_FILE) $(BIN)/pytest -m deb tests/deb $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info

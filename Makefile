# Two commands do all the set-up on a fresh machine: `make lab` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LAB_ARGS ?=
TEST_ARGS ?=

.PHONY: lab test venv broker bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Mosquitto is the real broker; without root or apt, edgeloop falls back to the embedded amqtt.
broker:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	    else echo "mosquitto not installed and not root: the embedded amqtt broker will be used"; fi; }

lab: venv broker
	YOLO_OFFLINE=1 $(PY) -m pipelines.cli lab $(LAB_ARGS)

test: venv broker
	YOLO_OFFLINE=1 $(PY) -m pytest -q $(TEST_ARGS)

bench: venv broker
	YOLO_OFFLINE=1 $(PY) -m pipelines.cli bench ingest

clean:
	rm -rf $(VENV) edgeloop-data .cache .pytest_cache

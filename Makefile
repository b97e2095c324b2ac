# clamscanner: the two commands are `make run` and `make test` (README.md).
SHELL := /bin/bash
CARGO ?= cargo
BIN_DEBUG := target/debug/clamscanner
BIN_RELEASE := target/release/clamscanner
DEMO := target/demo
PORT ?= 2082
DEST ?= /usr/lib/cgi-bin
BIN ?= $(BIN_RELEASE)

.PHONY: all build release run demo test test-shell bench bench-servers contract fuzz install-cgi lint \
        clean man deb rpm test-package

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# A demo account with a finished log, an htpasswd entry demo:demo, and the listener.
demo: build
	@bash scripts/demo.sh "$(DEMO)"

run: demo
	@echo
	@echo "Try:  curl -u demo:demo 'http://127.0.0.1:$(PORT)/execute/ClamScanner/check_disinfection_status?last_id=95'"
	@echo "Page: http://127.0.0.1:$(PORT)/  (user demo, password demo)   Stop with Ctrl-C."
	@echo
	$(BIN_DEBUG) serve --listen 127.0.0.1:$(PORT) --htpasswd $(DEMO)/htpasswd --home-root $(DEMO)/home

test: build
	$(CARGO) test
	bash tests/run.sh

bench: release
	bash bench/run.sh

# Web servers side by side (nginx, Apache, fcgiwrap, the listener): BENCHMARKS.md "Web servers".
bench-servers: release
	bash bench/servers.sh

contract: build
	bash tests/contract.sh

fuzz:
	bash fuzz/run.sh

# Copies the binary where Apache runs CGI programs (README "Deploying under Apache").
install-cgi:
	@if [ ! -x "$(BIN)" ]; then \
	  if [ "$(BIN)" = "$(BIN_RELEASE)" ]; then $(CARGO) build --release; \
	  else echo "install-cgi: no executable at $(BIN)" >&2; exit 1; fi; \
	fi
	install -d "$(DEST)"
	install -m 0755 "$(BIN)" "$(DEST)/clamscanner"

# The manual page, rendered to target/man/ and checked: groff and man must print no warning.
man:
	bash packaging/man.sh

# Packages from the release binary into target/package/ (README "Packages").
deb: release man
	@deb=$$(bash packaging/build.sh deb) && echo "$$deb" && \
	  lintian --fail-on error,warning "$$deb" 2>&1 | grep -v 'running with root privileges'; \
	  exit $${PIPESTATUS[0]}

rpm: release man
	bash packaging/build.sh rpm

# Installs the .deb system-wide, runs it under the system Apache and nginx, removes and purges
# it: for CI machines (root), never part of `make test`.
test-package: release
	bash tests/test_package.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean

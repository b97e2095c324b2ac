# clamscanner: the two commands are `make run` and `make test` (README.md).
SHELL := /bin/bash
CARGO ?= cargo
BIN_DEBUG := target/debug/clamscanner
BIN_RELEASE := target/release/clamscanner
DEMO := target/demo
PORT ?= 2082
SCENARIO ?= steady
DEST ?= /usr/lib/cgi-bin
BIN ?= $(BIN_RELEASE)

.PHONY: all build release run demo test test-shell bench bench-auth bench-servers contract fuzz install-cgi lint \
        clean man deb rpm test-package

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# A demo account with a finished log, an htpasswd entry demo:demo, and the listener.
demo: build
	@bash scripts/demo.sh "$(DEMO)"

# The listener, and a simulated run that loops until make run stops (SCENARIO= picks another:
# steady, queued, torn, corrupt, restart, clean, errors).
run: demo
	@echo
	@echo "Try:  curl -u demo:demo 'http://127.0.0.1:$(PORT)/execute/ClamScanner/check_disinfection_status?last_id=95'"
	@echo "Page: http://127.0.0.1:$(PORT)/  (user demo, password demo)   Stop with Ctrl-C."
	@echo "Run:  scenario $(SCENARIO), looping (make run SCENARIO=restart picks another)."
	@echo "Watch: $(BIN_DEBUG) watch --user demo --home-root $(DEMO)/home"
	@echo
	@$(BIN_DEBUG) simulate --home-root $(DEMO)/home --user demo --scenario $(SCENARIO) --loop & sim=$$!; \
	trap 'kill $$sim 2>/dev/null; wait $$sim 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	$(BIN_DEBUG) serve --listen 127.0.0.1:$(PORT) --htpasswd $(DEMO)/htpasswd --home-root $(DEMO)/home

test: build
	$(CARGO) test
	bash tests/run.sh

# The log engine against cPanel's reader (rewrites BENCHMARKS.md), then every web-server setup
# (appends its "Web servers" section), then the timing of known against unknown users (prints).
bench: release
	bash bench/run.sh
	bash bench/servers.sh
	python3 bench/auth_timing.py $(BIN_RELEASE)

# Known vs unknown users, both schemes, CGI and listener: medians must be within 10% (README "Security").
bench-auth: release
	python3 bench/auth_timing.py $(BIN_RELEASE)
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

# fuzz/ is a workspace of its own, so neither cargo test nor clippy compiles it: check it here,
# or a refactor breaks `make fuzz` silently. RUSTC_BOOTSTRAP=1: cargo-fuzz's crate wants nightly.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) check --bins

clean:
	$(CARGO) clean

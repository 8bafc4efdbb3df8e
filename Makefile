# The verbs: run, test, build, clippy, fmt. Each installs what it needs on a
# fresh machine: building, the wasm32-wasip1 target and clang (setup-build);
# testing and benchmarks, the servers and tools the tests start (setup).
# Packages come from apt-get, through sudo when not run as root.
SHELL := /bin/bash
CARGO ?= cargo
LISTEN ?= 127.0.0.1:1234
WASM_DIR := target/wasm32-wasip1/release
# Two builds: the programs that speak https:// get edgepoll's `tls` feature;
# in one build cargo would give it to all (2 MB and 20 s of AOT
# compilation more each).
WASM_PLAIN := -p poll_http_server -p ws_chat -p conformance_guest -p abi_transcript -p forward_guest
WASM_TLS := -p nonblock_http_client -p proxy
WASM_PROGRAMS := $(WASM_PLAIN) $(WASM_TLS)
# The programs with whole-program optimisation (fat LTO, one codegen unit):
# examples/proxy then runs about 5% fewer Wasm instructions per request.
# Only for the wasm build: in the profile it would also apply to wasmtime and
# to every native test binary, minutes of linking each. tests/src/lib.rs
# builds the programs the same way.
WASM_BUILD := CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 $(CARGO) build --release --target wasm32-wasip1
# Real WasmEdge joins every test when a working one is found: on PATH, or
# ../shared/wasmedge (repaired into target/wasmedge when its library links
# were flattened; see scripts/wasmedge-path). A broken `wasmedge` first on
# PATH is thereby replaced by the working one, not taken for an absent one.
# edgepoll-host's compiled-code cache for the runs make starts: named, so
# that a host running as root (CI) keeps one too (it keeps none in its
# default place; see crates/edgepoll-host/src/compile_cache.rs). No guest
# here is given target/.
export EDGEPOLL_HOST_CACHE ?= $(CURDIR)/target/host-cache
WASMEDGE_BIN := $(shell scripts/wasmedge-path 2>/dev/null)
ifneq ($(WASMEDGE_BIN),)
export PATH := $(WASMEDGE_BIN):$(PATH)
endif

.PHONY: run test build clippy fmt setup setup-build setup-image fuzz bench soak chat browser-check image proxy
# A bare `make` builds (setup-build, the first rule, would only install).
.DEFAULT_GOAL := build
FUZZ_SECONDS ?= 120
# Package installs never stop to ask; pip installs into a Python that
# Debian manages (PEP 668) as into any other.
export DEBIAN_FRONTEND := noninteractive
export PIP_BREAK_SYSTEM_PACKAGES := 1

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

setup-build:
	@command -v rustup >/dev/null || { echo "rustup is missing: install Rust $$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) or later with rustup (https://rustup.rs), which adds the wasm32-wasip1 target"; exit 1; }
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' && rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add clippy rustfmt
	@command -v clang >/dev/null || { echo "installing clang (ring's C parts, for https:// in the guest)"; $(APT) update -qq && $(APT) install -y -qq clang; }

# What `make image` needs, and no more.
setup-image:
	@command -v umoci >/dev/null && command -v skopeo >/dev/null || { echo "installing umoci and skopeo (make image and its test use them)"; $(APT) update -qq && $(APT) install -y -qq umoci skopeo; }

setup: setup-build setup-image
	@command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || { echo "installing python3 and pip (the WebSocket, TLS, DNS and deploy tests use them)"; $(APT) update -qq && $(APT) install -y -qq python3 python3-pip; }
	@command -v curl >/dev/null || { echo "installing curl (tests use it)"; $(APT) update -qq && $(APT) install -y -qq curl; }
	@command -v strace >/dev/null || { echo "installing strace (a test counts the echo server's writes with it)"; $(APT) update -qq && $(APT) install -y -qq strace; }
	@python3 -c "import websockets.asyncio.client" 2>/dev/null || { echo "installing Python's websockets 13 or later (the WebSocket tests use it)"; python3 -m pip install --quiet --upgrade --ignore-installed 'websockets>=13,<18'; }
	@command -v kubernetes-validate >/dev/null || { echo "installing kubernetes-validate (the manifests' test uses it)"; python3 -m pip install --quiet 'kubernetes-validate==1.37.*'; }
	@test -x /usr/sbin/nginx || test -x /usr/bin/nginx || { echo "installing nginx (an upstream in the forwarding tests; the tests start their own, so its service is stopped and disabled)"; $(APT) update -qq && $(APT) install -y -qq nginx-light && { ! command -v systemctl >/dev/null || $(SUDO) systemctl disable --now nginx >/dev/null 2>&1 || echo "nginx's service could not be stopped: it may be listening on port 80"; }; }
	@command -v openssl >/dev/null || { echo "installing openssl (the TLS tests make their certificates with it)"; $(APT) update -qq && $(APT) install -y -qq openssl; }
	@command -v dnsmasq >/dev/null || test -x /usr/sbin/dnsmasq || { echo "installing dnsmasq (the DNS server of the resolver's tests)"; $(APT) update -qq && $(APT) install -y -qq dnsmasq-base; }

# The runtime is built with the workspace's features (--workspace), as
# `cargo test --workspace` builds it: with `-p edgepoll-host` cargo would
# resolve smallvec and once_cell with fewer features and build wasmtime twice
# (about 1 GB of target/ and minutes of CI more).
HOST_BUILD := build --release --workspace --bin edgepoll-host
# Lints run on the release profile: its build scripts and proc macros are
# the ones `build` already compiled, and it keeps no incremental state.
CLIPPY := $(CARGO) clippy --release

build: setup-build
	$(CARGO) $(HOST_BUILD)
	$(WASM_BUILD) $(WASM_PLAIN)
	$(WASM_BUILD) $(WASM_TLS)

# Build and start the echo server (wasmedge when on PATH, else edgepoll-host).
run: build
	scripts/wasm-runner $(WASM_DIR)/poll_http_server.wasm $(LISTEN)

test: setup build
	$(CARGO) fmt --all -- --check
	$(CLIPPY) --workspace --all-targets -- -D warnings
	$(CLIPPY) --target wasm32-wasip1 -p edgepoll $(WASM_PLAIN) --all-targets -- -D warnings
	$(CLIPPY) --target wasm32-wasip1 -p edgepoll $(WASM_TLS) --all-targets -- -D warnings
	# The API documentation as users read it (for wasm32-wasip1, every
	# feature): no link that leads nowhere.
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --target wasm32-wasip1 -p edgepoll --features http,tls --no-deps
	@if command -v wasmedge >/dev/null && wasmedge --version >/dev/null 2>&1; then \
	  echo "Runtimes present: edgepoll-host, wasmedge interpreter and wasmedge AOT ($$(command -v wasmedge)): every conformance and end-to-end test runs on each"; \
	 else \
	  echo "NOTE: no working wasmedge (none on PATH, none in ../shared/wasmedge): conformance and end-to-end tests run under the bundled runtime edgepoll-host only"; \
	 fi
	# --show-output: each end-to-end test prints the runtimes it ran on.
	$(CARGO) test --release --workspace -- --show-output
	# The state machines under mutated input, and a hostile guest's every
	# call into edgepoll-host, briefly and replayably (make fuzz runs them longer).
	$(CARGO) run --quiet --release -p edgepoll-fuzz --bin edgepoll-fuzz -- --seconds 20 --seed 20261201
	$(CARGO) run --quiet --release -p edgepoll-fuzz --bin host_imports -- --seconds 20 --seed 20261201
	# edgepoll's unit tests once more as WebAssembly, where its SIMD scans and
	# its SIMD ChaCha20 (checked against ring) run, and its documentation's
	# examples, where those of net, Poll and Server compile (and most run),
	# on every runtime present: each example is compiled once and run on
	# each in turn (EDGEPOLL_RUNTIME=all; compiled anew for each runtime,
	# rustdoc took 45 s more a runtime). For AOT, WasmEdge compiles these modules
	# (one per example, about 300) without LLVM's optimisations: they check
	# behaviour, not speed, and optimising each took 2 s, some nine minutes
	# in all. The programs the end-to-end tests run are compiled as users do.
	# Each run is bounded (a hung test ends it, and make test fails), in the
	# foreground: Ctrl-C reaches it, and CI's own timeout, which ends make's
	# process group, ends it too. Under CI=true a missing WasmEdge fails here.
	@wasmedge=$$(command -v wasmedge >/dev/null && timeout 30 wasmedge --version >/dev/null 2>&1 && echo wasmedge aot); \
	if [ -z "$$wasmedge" ] && [ "$$CI" = true ]; then echo "CI=true but no working wasmedge on PATH" >&2; exit 1; fi; \
	for runtime in host $$wasmedge; do \
	  echo "edgepoll unit tests as wasm32-wasip1 on $$runtime"; \
	  EDGEPOLL_RUNTIME=$$runtime EDGEPOLL_AOT_OPTIMIZE=0 timeout --foreground -k 10 30m $(CARGO) test --quiet --release --target wasm32-wasip1 -p edgepoll --features tls --lib || exit 1; \
	done; \
	echo "edgepoll doc examples as wasm32-wasip1, each on host $$wasmedge"; \
	EDGEPOLL_RUNTIME=all EDGEPOLL_AOT_OPTIMIZE=0 timeout --foreground -k 10 60m $(CARGO) test --release --target wasm32-wasip1 -p edgepoll --features tls,http --doc

clippy: setup-build
	$(CLIPPY) --workspace --all-targets -- -D warnings
	$(CLIPPY) --target wasm32-wasip1 -p edgepoll $(WASM_PLAIN) --all-targets -- -D warnings
	$(CLIPPY) --target wasm32-wasip1 -p edgepoll $(WASM_TLS) --all-targets -- -D warnings

fmt: setup-build
	$(CARGO) fmt --all

# OCI images of the echo server and the chat (FROM scratch, the .wasm as
# entrypoint, for WasmEdge on Kubernetes) in the image layout target/oci.
# With wasmedge at hand each module is AOT-compiled first, for any x86-64
# (--generic-binary): a universal wasm, whose native code WasmEdge (crun's or
# runwasi's) runs where it matches and whose wasm it interprets elsewhere.
image: setup-image build
	@mkdir -p target/image
	@for p in poll_http_server ws_chat; do \
	  if wasmedge --version >/dev/null 2>&1; then \
	    wasmedge compile --generic-binary $(WASM_DIR)/$$p.wasm target/image/$$p.wasm >/dev/null || exit 1; \
	    echo "$$p: AOT-compiled (universal wasm)"; \
	  else \
	    cp $(WASM_DIR)/$$p.wasm target/image/$$p.wasm; \
	    echo "$$p: wasmedge is not on PATH: not AOT-compiled, the image runs interpreted (about 8 to 11 times slower)"; \
	  fi; \
	  deploy/build-image.sh target/image/$$p.wasm target/oci $$p 0.0.0.0:8080 || exit 1; \
	done

# Build and start the WebSocket chat; open http://$(LISTEN)/ in two windows.
chat: build
	scripts/wasm-runner $(WASM_DIR)/ws_chat.wasm $(LISTEN)

# examples/proxy on $(LISTEN) in front of $(BACKENDS) echo servers on the next
# ports (BACKENDS=N; one WasmEdge process per core is how WasmEdge uses them).
BACKENDS ?= 2
proxy: build
	scripts/proxy-demo $(LISTEN) $(BACKENDS)

# Two headless Chromium pages chat through ws_chat on every runtime present;
# saves docs/chat.png (not part of make test).
browser-check: setup build
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || { echo "installing chromium (headless, for the browser check)"; $(APT) update -qq && $(APT) install -y -qq chromium; }
	python3 tests/browser/check.py

# Mutation-fuzz the HTTP and WebSocket state machines (deferred and streamed
# answers too), the response parser,
# the client's requests, the reading of DNS answers, the WebSocket handshake
# and the proxy's rewriting of what it passes on, then edgepoll-host's
# imports (random arguments and memory, a canary directory), for FUZZ_SECONDS
# each (make test runs both for 20 s with a fixed seed).
fuzz: setup-build
	$(CARGO) run --release -p edgepoll-fuzz --bin edgepoll-fuzz -- --seconds $(FUZZ_SECONDS)
	$(CARGO) run --release -p edgepoll-fuzz --bin host_imports -- --seconds $(FUZZ_SECONDS)

# Benchmarks (not part of make test): every server under the same wrk load;
# writes bench/RESULTS.md, bench/*.png and the README's table.
bench: setup build
	@command -v wrk >/dev/null && command -v gnuplot >/dev/null && command -v valgrind >/dev/null || { echo "installing wrk, gnuplot and valgrind"; $(APT) update -qq && $(APT) install -y -qq wrk gnuplot-nox valgrind; }
	@command -v ss >/dev/null || { echo "installing iproute2 (the forwarding benchmark counts connections with ss)"; $(APT) update -qq && $(APT) install -y -qq iproute2; }
	$(CARGO) build --release --manifest-path bench/Cargo.toml --target-dir target -p native_echo -p native_pipe -p idle_holder -p loadgen -p ws_native -p ws_load -p tls_client
	$(CARGO) build --release --manifest-path bench/Cargo.toml --target-dir target --target wasm32-wasip1 -p book_style_server -p hyper_echo -p minimal_server -p fixed_server -p http_layer -p cpu_server -p wasm_pipe
	python3 bench/run.py

# A million mixed requests on every runtime present, every byte checked, RSS
# tracked (a few minutes; not part of make test). SOAK_SEED=N replays a run.
soak: setup build
	$(CARGO) build --release --manifest-path bench/Cargo.toml --target-dir target -p soak
	python3 bench/soak.py

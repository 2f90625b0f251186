# mailfs: see README.md.
GO       ?= go
BIN      := bin/mailfs
PKGS     := ./...
# Tests that mount and start servers run one package at a time: the
# machine has two cores and every package starts its own servers.
TESTFLAGS ?= -race -count=1 -p 1 -timeout 20m

.PHONY: all build demo test test-short bench lint setup setup-test clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mailfs

# Installs what a fresh Debian/Ubuntu machine lacks for a mount (fuse3),
# asking for root only when something is missing.
setup:
	@./internal/scripts/setup.sh demo

# Also the private Dovecot the tests start (dovecot-imapd, dovecot-pop3d).
setup-test:
	@./internal/scripts/setup.sh test

demo: setup build
	./$(BIN) demo $(MNT)

test: setup-test
	$(GO) vet $(PKGS) mailfs/testdata
	$(GO) test $(TESTFLAGS) $(PKGS)

test-short:
	$(GO) test -race -short $(PKGS)

bench: setup-test build
	$(GO) run ./internal/bench $(BENCHFLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS) mailfs/testdata

clean:
	rm -rf bin

# mailfs: see README.md.
GO       ?= go
BIN      := bin/mailfs
PKGS     := ./...
# Tests that mount and start servers run one package at a time: the
# machine has two cores and every package starts its own servers.
TESTFLAGS ?= -race -count=1 -p 1 -timeout 20m

# Fuzzing: `make fuzz` runs every fuzz target for FUZZTIME; `make test`
# ends with each for FUZZSMOKE (no -race: it slows fuzzing down too much).
FUZZTIME  ?= 60s
FUZZSMOKE ?= 3s

.PHONY: all build demo test test-short bench lint setup setup-test clean fuzz fuzz-smoke

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
	@$(MAKE) --no-print-directory fuzz-smoke

test-short:
	$(GO) test -race -short $(PKGS)

bench: setup-test build
	$(GO) run ./internal/bench $(BENCHFLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS) mailfs/testdata

clean:
	rm -rf bin

# fuzzrun runs the fuzz target $(2) of package $(3) for $(1); go test -fuzz
# takes one package and one target at a time.
fuzzrun = $(GO) test -run='^$$' -fuzz='^$(2)$$' -fuzztime=$(1) $(3)

fuzz:
	$(call fuzzrun,$(FUZZTIME),FuzzNames,./fs)
	$(call fuzzrun,$(FUZZTIME),FuzzFields,./internal/header)
	$(call fuzzrun,$(FUZZTIME),FuzzParse,./internal/config)
	$(call fuzzrun,$(FUZZTIME),FuzzReadData,./remote/pop3)
	$(call fuzzrun,$(FUZZTIME),FuzzResponses,./remote/imap)

fuzz-smoke:
	$(call fuzzrun,$(FUZZSMOKE),FuzzNames,./fs)
	$(call fuzzrun,$(FUZZSMOKE),FuzzFields,./internal/header)
	$(call fuzzrun,$(FUZZSMOKE),FuzzParse,./internal/config)
	$(call fuzzrun,$(FUZZSMOKE),FuzzReadData,./remote/pop3)
	$(call fuzzrun,$(FUZZSMOKE),FuzzResponses,./remote/imap)

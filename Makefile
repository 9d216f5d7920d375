# Medicus Trust. The two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
GO    ?= go
# Pinned code generators for `make proto` (protoc itself comes from Debian's protobuf-compiler).
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
PROTOC_GEN_GATEWAY_VERSION := v2.33.0
STATICCHECK_VERSION        := v0.6.1

.PHONY: demo test bench lint proto fuzz vault clean profile

## demo: run trustd and the demo workload end to end (KMS=vault to use a real Vault dev server)
demo:
	KMS=$(or $(KMS),local) bash scripts/demo.sh

## test: refuse large tracked files, lint (gofmt, vet, staticcheck), install what the tests need
## (a pinned Vault server, PostgreSQL) and run every test with -race
test:
	STATICCHECK_VERSION=$(STATICCHECK_VERSION) bash scripts/test.sh

## bench: print the `ratio NAME VALUE` lines of every benchmark
bench:
	set -o pipefail; $(GO) test -p 1 -run '^$$' -bench Ratio -benchtime 1x ./... | tee .bench.out | grep -E '^ratio '

## profile: CPU and allocation profiles of a real trustd under `trustctl loadtest` (into .profile/)
profile:
	mkdir -p .profile
	TRUSTD_PROFILE_DIR=$(CURDIR)/.profile $(GO) test -run '^$$' -bench RatioTrustdCPU -benchtime 1x ./cmd/trustd | grep -E '^(ratio|loadtest) '
	$(GO) tool pprof -top -nodecount=25 .profile/trustd.cpu | tee .profile/cpu.txt
	$(GO) tool pprof -top -nodecount=25 -sample_index=alloc_space .profile/trustd.alloc | tee .profile/alloc.txt

## lint: formatting, vet and staticcheck
lint:
	STATICCHECK_VERSION=$(STATICCHECK_VERSION) bash scripts/lint.sh

## fuzz: a short run of every fuzz target (FUZZTIME=30s for longer)
fuzz:
	bash scripts/fuzz.sh $(or $(FUZZTIME),10s)

## proto: regenerate api/trustv1 from trust.proto with the pinned generators
proto:
	command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)
	GOBIN=$(CURDIR)/.bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/.bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	GOBIN=$(CURDIR)/.bin $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(PROTOC_GEN_GATEWAY_VERSION)
	$(GO) build -o $(CURDIR)/.bin/protoc-gen-mdref ./internal/protoc-gen-mdref
	PATH=$(CURDIR)/.bin:$$PATH protoc -I api --go_out=api --go_opt=paths=source_relative \
		--go-grpc_out=api --go-grpc_opt=paths=source_relative \
		--grpc-gateway_out=api --grpc-gateway_opt=paths=source_relative,generate_unbound_methods=true \
		--mdref_out=docs/api --mdref_opt=json_services=Trust api/trustv1/trust.proto

## vault: build the pinned Vault server into the cache (make test does this when needed)
vault:
	bash scripts/install-vault.sh

clean:
	rm -rf .bin .demo .bench.out .profile

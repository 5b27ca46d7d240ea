# The two commands of README.md live here so CI and people run the same thing.
GO ?= go
export PATH := $(PATH):$(shell $(GO) env GOPATH)/bin

.PHONY: run test vet generate build
run:
	$(GO) run ./cmd/sessiond start-dev

build:
	$(GO) build -o bin/sessiond ./cmd/sessiond

# test brings up the services the suite needs (PostgreSQL; Redis and NATS for the example
# plugins; Debian's Chromium for the browser login tests), runs every test with the race detector, then vets and tests the example plugins,
# a Go module of their own (plugins/examples), then gives each fuzz target a short budget
# (FUZZTIME) on top of its checked-in corpus. The budget is a count of executions, not a
# duration: with a duration, Go's fuzzing coordinator can report its own deadline as a
# failure ("context deadline exceeded", no failing input) when a loaded machine keeps a
# worker busy past it (golang/go#75804); a count has no deadline to race. 20000 runs take
# 1-10 s a target on the 2-core CI machine.
FUZZTIME ?= 20000x
test:
	.ci/services
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	cd plugins/examples && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./core/token/
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyAction$$' -fuzztime $(FUZZTIME) ./core/token/
	$(GO) test -run '^$$' -fuzz '^FuzzWireJSON$$' -fuzztime $(FUZZTIME) ./core/token/
	$(GO) test -run '^$$' -fuzz '^FuzzTokenEndpoint$$' -fuzztime $(FUZZTIME) ./core/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzIntrospect$$' -fuzztime $(FUZZTIME) ./core/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzRevoke$$' -fuzztime $(FUZZTIME) ./core/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenSession$$' -fuzztime $(FUZZTIME) ./core/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzActionTokenRoutes$$' -fuzztime $(FUZZTIME) ./core/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzAuthorize$$' -fuzztime $(FUZZTIME) ./core/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzCodeGrant$$' -fuzztime $(FUZZTIME) ./core/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./core/dpop/
	$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./internal/jsonkeys/

generate:
	$(GO) generate ./...

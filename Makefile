# spikeline — build, test, benchmark.
GO ?= go
PKGS ?= ./...
BENCHTIME ?= 1s
COUNT ?= 6

.PHONY: lint hostile all build test test-race test-long vet fmt bench bench-save fuzz accuracy accuracy-external accuracy-external-peer gtkit decode-accuracy latency soak run clean

all: vet build test

build:
	$(GO) build -o bin/spikeline ./cmd/spikeline

# The test command of the README and of .ci/run.
test:
	$(GO) test -count=1 -timeout 20m $(PKGS)

test-race:
	$(GO) test -race -count=1 -short -timeout 20m $(PKGS)

# Long soaks and full-size accuracy runs.
test-long:
	SPIKELINE_LONG=1 $(GO) test -count=1 -timeout 60m $(PKGS)

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

fmt:
	gofmt -w $$(git ls-files '*.go')

# staticcheck at the version .ci/run pins (fetched through the Go module proxy).
STATICCHECK_VERSION ?= $(shell sed -n 's/^STATICCHECK_VERSION=\([^ ]*\).*/\1/p' .ci/run)
lint:
	GOFLAGS= $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

# Benchmarks; compare runs with benchstat (go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt).
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(COUNT) $(PKGS) | tee bench.txt

# Fuzz every decoder of outside bytes for FUZZTIME each: every Fuzz function
# of every package (wire decoder, recording sidecar and data, TOML config,
# CSV inputs, NATS messages binary and JSON, decoder models, ...), and the
# stimulation path (random JSON and binary requests through the host's
# limits to the emulator, FuzzStimulate) for STIM_FUZZTIME.
FUZZTIME ?= 30s
STIM_FUZZTIME ?= 10m
fuzz:
	@for p in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list='^Fuzz' $$p 2>/dev/null | grep '^Fuzz'); do \
			t=$(FUZZTIME); if [ "$$f" = FuzzStimulate ]; then t=$(STIM_FUZZTIME); fi; \
			echo "fuzz $$p $$f ($$t)"; \
			$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$$t $$p || exit 1; \
		done; done

# Every hostile input of docs/hostile.md against the built binary; prints
# the table the document holds.
hostile: build
	$(GO) run ./scripts/hostile -bin bin/spikeline

# Full sorter accuracy figures (by SNR band) on a simulated recording.
accuracy:
	SPIKELINE_LONG=1 $(GO) test -count=1 -run Accuracy -v -timeout 30m ./sort/... | grep -v '^=== RUN'

# Sorter accuracy on the independent ground-truth kit (docs/gtkit.md):
# recordings made by SpikeInterface's generators, in EXTDIR (outside git).
# Generates the kit where a recording is missing (needs SpikeInterface: see
# scripts/gtkit/setup-ext.sh), sorts every recording with the defaults,
# scores it and prints the tables per recording and SNR band.
# QUICK=1: one seed per variant; ONLY=white,lfp; SEEDS=1,2; VERBOSE=1: per unit;
# JOBS: recordings sorted at once. accuracy-external-peer adds the peer sorter
# (PEER, default /work/shared/peers/peer_sorter.py) side by side.
EXTDIR ?= /tmp/spikeline-gtkit
GTKIT_EXT ?= /work/ext
JOBS ?= 1
GTKIT_ENV = EXTDIR='$(EXTDIR)' GTKIT_EXT='$(GTKIT_EXT)' QUICK='$(QUICK)' ONLY='$(ONLY)' SEEDS='$(SEEDS)' \
	JOBS='$(JOBS)' VERBOSE='$(VERBOSE)' RESORT='$(RESORT)' $(if $(PEER),PEER='$(PEER)')
accuracy-external: build
	$(GTKIT_ENV) SORTERS=spikeline scripts/gtkit/run.sh

accuracy-external-peer: build
	$(GTKIT_ENV) SORTERS='spikeline peer' scripts/gtkit/run.sh

# Only generate the kit (all seeds, or QUICK/ONLY/SEEDS) into EXTDIR/kit.
gtkit:
	PYTHONPATH='$(GTKIT_EXT)/spikeinterface/src:$(GTKIT_EXT)/probeinterface/src:$(GTKIT_EXT)/meta' \
	GTKIT_WAVEFORMS='$(GTKIT_EXT)/waveforms/full_data.npy' /usr/bin/python3 scripts/gtkit/gtkit.py generate '$(EXTDIR)/kit' \
		$(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY)) $(if $(SEEDS),--seeds $(SEEDS))

# Decoder accuracy figures against the theoretical bound and ground truth.
decode-accuracy:
	SPIKELINE_LONG=1 $(GO) test -count=1 -run Accuracy -v -timeout 30m ./decode/... | grep -v '^=== RUN'

# End-to-end latency of `spikeline run` (frame arrival -> spikes on NATS),
# p50/p99 at 256 and 1,024 channels, paced at real time: LATENCY_N seconds
# of device time per run after warm-up, LATENCY_COUNT runs. Raw output,
# with the load average before and after, in LATENCY_OUT; docs/performance.md.
LATENCY_N ?= 20
LATENCY_COUNT ?= 3
LATENCY_OUT ?= cmd/spikeline/testdata/latency_benchmark.txt
latency:
	@mkdir -p $(dir $(LATENCY_OUT))
	( uptime; $(GO) test -run='^$$' -bench='^BenchmarkRunLatency$$' -benchtime=$(LATENCY_N)x -count=$(LATENCY_COUNT) \
		-timeout 60m ./cmd/spikeline 2>&1; echo "exit $$?"; uptime ) | tee $(LATENCY_OUT)
	@grep -q '^exit 0$$' $(LATENCY_OUT)

# The soak: SOAK_CHANNELS (1,024) at 30 kHz for SOAK of real time, failing on any
# lost sample, missed decoder bin or memory growth after SOAK_WARMUP
# (default: a third of SOAK, at least 2m). Raw output in SOAK_OUT.
SOAK ?= 10m
SOAK_CHANNELS ?= 1024
SOAK_WARMUP ?=
SOAK_TIMEOUT ?= 30m
SOAK_OUT ?= cmd/spikeline/testdata/soak.txt
soak:
	@mkdir -p $(dir $(SOAK_OUT))
	( uptime; SPIKELINE_SOAK=$(SOAK) SPIKELINE_SOAK_CHANNELS=$(SOAK_CHANNELS) SPIKELINE_SOAK_WARMUP=$(SOAK_WARMUP) $(GO) test -count=1 -run='^TestRunSoak$$' -v -timeout $(SOAK_TIMEOUT) ./cmd/spikeline 2>&1; \
		echo "exit $$?"; uptime ) | tee $(SOAK_OUT)
	@grep -q '^exit 0$$' $(SOAK_OUT)

# The Intan RHX path (docs/intan.md): the simulator behind the RHX emulator
# on loopback, read by spikeline run --device rhx:. rhx-latency: data block
# arrival -> spikes on NATS at 64 and 512 channels, TCPNumberDataBlocksPerWrite
# 1 and 10 (RHX_LATENCY_N seconds measured per case); rhx-soak: RHX_SOAK of
# real time at each of RHX_CHANNELS, failing on any lost sample or the
# pipeline falling a second behind. Raw output in the _OUT files.
RHX_LATENCY_N ?= 20
RHX_LATENCY_OUT ?= cmd/spikeline/testdata/rhx_latency.txt
rhx-latency:
	@mkdir -p $(dir $(RHX_LATENCY_OUT))
	( uptime; $(GO) test -run='^$$' -bench='^BenchmarkRHXLatency$$' -benchtime=$(RHX_LATENCY_N)x -count=1 \
		-timeout 60m ./cmd/spikeline 2>&1; echo "exit $$?"; uptime ) | tee $(RHX_LATENCY_OUT)
	@grep -q '^exit 0$$' $(RHX_LATENCY_OUT)

RHX_SOAK ?= 10m
RHX_CHANNELS ?= 64,512
RHX_SOAK_OUT ?= cmd/spikeline/testdata/rhx_soak.txt
rhx-soak:
	@mkdir -p $(dir $(RHX_SOAK_OUT))
	( uptime; SPIKELINE_RHX_SOAK=$(RHX_SOAK) SPIKELINE_RHX_CHANNELS=$(RHX_CHANNELS) $(GO) test -count=1 -run='^TestRHXSoak$$' -v \
		-timeout 120m ./cmd/spikeline 2>&1; echo "exit $$?"; uptime ) | tee $(RHX_SOAK_OUT)
	@grep -q '^exit 0$$' $(RHX_SOAK_OUT)

# The RHX path alone (no sorter): the test pattern through the emulator to
# the RHX source, every sample checked, RHX_SOAK at each of RHX_CHANNELS.
RHX_TRANSPORT_OUT ?= device/intan/testdata/rhx_transport_soak.txt
rhx-transport-soak:
	( uptime; SPIKELINE_RHX_SOAK=$(RHX_SOAK) SPIKELINE_RHX_CHANNELS=$(RHX_CHANNELS) $(GO) test -count=1 -run='^TestRHXTransportSoak$$' -v \
		-timeout 120m ./device/intan 2>&1; echo "exit $$?"; uptime ) | tee $(RHX_TRANSPORT_OUT)
	@grep -q '^exit 0$$' $(RHX_TRANSPORT_OUT)

# The main job on embedded defaults: simulated headstage -> sorter -> decoder -> embedded NATS.
run:
	$(GO) run ./cmd/spikeline run

clean:
	rm -rf bin bench.txt

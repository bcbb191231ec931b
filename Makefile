# The two set-up commands the README shows, on a fresh Debian 12 machine:
#   make run    install what is missing, configure, build, run the main job
#   make test   the same set-up, then every test
# Everything else is CMake (CMakeLists.txt); this file only strings the steps together.

BUILD      ?= build
ASAN_BUILD ?= build-asan
CACHE      ?= .cache/npm
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
GGML_DIR    = $(abspath $(CACHE))/node-llama-cpp-linux-x64/bins/linux-x64

DEB_PACKAGES = build-essential cmake pkg-config git python3 clang libclang-rt-14-dev \
               libjansson-dev libcmocka-dev libmsgpack-dev libzmq3-dev libsqlite3-dev \
               libhwloc-dev libyaml-dev libsodium-dev libcurl4-openssl-dev \
               sqlite3 npm gcc-aarch64-linux-gnu qemu-user chromium \
               ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd \
               libopenblas-dev liblapacke-dev \
               libprotobuf-c-dev protobuf-c-compiler

CMAKE_ARGS = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQF_GGML_DIR=$(GGML_DIR) \
             -DQF_ORT_DIR=$(abspath $(CACHE))/onnxruntime-node

.PHONY: run test test-asan deps build build-asan ggml bench clean

run: build
	./$(BUILD)/qfleet formats
	./$(BUILD)/qfleet run suites/quick.yaml

test: build ggml
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The sanitizer build: clang, AddressSanitizer + UndefinedBehaviorSanitizer, every test.
test-asan: build-asan ggml
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

deps:
	@scripts/deps.sh $(DEB_PACKAGES)

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=gcc $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DQF_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The libraries npm brings, into CACHE: ggml's (conformance reference) and ONNX Runtime's (ort).
ggml: deps
	@scripts/fetch-ggml.sh $(CACHE)
	@scripts/fetch-ort.sh $(CACHE)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# --- hardening: fuzzing, soak, the aarch64 cross build (docs/deploy.md, docs/performance.md) ---
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 600
FUZZ_TARGETS  = wire gguf safetensors suite imatrix
SOAK_SECONDS ?= 600
CROSS_BUILD  ?= build-aarch64
# arm64 cmocka from Debian's multiarch archive (deps.sh adds the arm64 architecture first)
CROSS_DEB_PACKAGES = gcc-aarch64-linux-gnu qemu-user libcmocka-dev:arm64 libjansson-dev:arm64 \
                     libmsgpack-dev:arm64 libzmq3-dev:arm64 libsqlite3-dev:arm64 \
                     libhwloc-dev:arm64 libyaml-dev:arm64 libsodium-dev:arm64 \
                     libcurl4-openssl-dev:arm64 libprotobuf-c-dev:arm64 protobuf-c-compiler \
                     libopenblas-dev:arm64 liblapacke-dev:arm64
# Tests that need more than the test binary under qemu-user: other processes of the arm64
# qfleet (no binfmt_misc here), python3 helpers, Chromium, ggml's x86 libraries, a GPU. The
# others run with CI's QF_REQUIRE_* unset: x86 ggml cannot be an arm64 binary's reference
# (test_gguf then skips its ggml half and says so), and no arm64 OpenCL loader is installed.
# test_gptq is built but not run: its ~40 small layers through OpenBLAS take over 10 minutes
# under emulation (portable C and BLAS, no NEON code of ours to check).
CROSS_SKIP = test_cli|test_fleet|test_faults|test_report|test_quantize|test_llama|test_tokenizer|test_eval|test_fetch|test_bench_kernels|test_bench_model|test_deploy|test_conformance_ggml|test_opencl|test_cuda|test_fw_ort|test_gptq

.PHONY: fuzz fuzz-build fuzz-seeds soak cross-aarch64

fuzz-build: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DQF_FUZZ=ON -DQF_CUDA=OFF $(CMAKE_ARGS) >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target qf_fuzz make_seeds

# Each libFuzzer target (clang, ASan + UBSan) for FUZZ_SECONDS on its seeds in tests/fuzz/NAME/;
# inputs it finds go to FUZZ_BUILD/corpus/NAME, a crash to FUZZ_BUILD/findings/ (and fails).
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/findings; \
	    echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	    if ! $(FUZZ_BUILD)/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
	            -close_fd_mask=2 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/findings/$$t- \
	            $(FUZZ_BUILD)/corpus/$$t tests/fuzz/$$t > $(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
	        tail -n 80 $(FUZZ_BUILD)/fuzz_$$t.log; \
	        echo "fuzz_$$t: FINDING, input saved under $(FUZZ_BUILD)/findings/"; exit 1; \
	    fi; \
	    grep -E '^Done|number_of_executed_units|peak_rss' $(FUZZ_BUILD)/fuzz_$$t.log; \
	done

# Rewrites the wire, gguf and safetensors seeds with quantfleet's own writers.
fuzz-seeds: fuzz-build
	$(FUZZ_BUILD)/tests/fuzz/make_seeds tests/fuzz

# The long runs: 100 agent and 20 coordinator kills during a suite, then 1,000 simulated
# agents through one coordinator: a warm-up until each has run 600 jobs (libzmq's queues to a
# peer are then at their size), then SOAK_SECONDS measured (jobs/s, p99 dispatch; RSS must stay
# within 10% of its value at the end of the warm-up; docs/performance.md).
soak: build
	cd $(BUILD) && QF_FAULT_AGENT_KILLS=100 QF_FAULT_COORD_KILLS=20 \
	    ctest --output-on-failure -R '^test_faults$$'
	./$(BUILD)/qfleet bench --op fleet --agents 1000 --duration $(SOAK_SECONDS) --sample-s 10

# The whole qfleet built for 64-bit Arm Linux with Debian's cross compiler and arm64 libraries
# (multiarch), and its unit tests run under qemu-aarch64 (cmake/toolchains/aarch64-linux-gnu.cmake).
cross-aarch64:
	@scripts/deps.sh $(CROSS_DEB_PACKAGES)
	cmake -S . -B $(CROSS_BUILD) -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
	    -DQF_CUDA=OFF -DQF_OPENCL=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(CROSS_BUILD) -j $(JOBS)
	aarch64-linux-gnu-readelf -h $(CROSS_BUILD)/qfleet | grep -E "Machine:.*AArch64"
	cd $(CROSS_BUILD) && env -u QF_REQUIRE_GGML -u QF_REQUIRE_OPENCL -u QF_REQUIRE_CHROMIUM \
	    ctest --output-on-failure -j $(JOBS) -E '$(CROSS_SKIP)'


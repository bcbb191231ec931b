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
               sqlite3 npm

CMAKE_ARGS = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQF_GGML_DIR=$(GGML_DIR)

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

ggml: deps
	@scripts/fetch-ggml.sh $(CACHE)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# macos-arm64.cmake - build for Apple Silicon (arm64) macOS, natively or from an Intel Mac.
#
#   brew install cmake pkg-config cmocka                      # kernels-only build
#   brew install zeromq msgpack sqlite hwloc libyaml jansson libsodium curl   # the full qfleet
#   cmake -S . -B build-mac -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/macos-arm64.cmake \
#         -DQF_KERNELS_ONLY=ON && cmake --build build-mac && ctest --test-dir build-mac
#
# Apple clang, arm64 only, macOS 12 or newer. Homebrew on Apple Silicon lives in /opt/homebrew:
# its pkg-config files and libraries are searched first. From an Intel Mac the arm64 tests
# cannot run (no Rosetta in that direction); on Apple Silicon they run natively. The agent's
# job runner and pinning are Linux code today (prctl, sched_setaffinity), so the kernels-only
# build is what this file is tested with; not built in CI (no macOS runner).
set(CMAKE_SYSTEM_NAME Darwin)
set(CMAKE_SYSTEM_PROCESSOR arm64)
set(CMAKE_OSX_ARCHITECTURES arm64 CACHE STRING "")
set(CMAKE_OSX_DEPLOYMENT_TARGET 12.0 CACHE STRING "")
set(CMAKE_C_COMPILER clang)
set(QF_HOMEBREW_PREFIX /opt/homebrew CACHE PATH "Homebrew's prefix on Apple Silicon")
list(PREPEND CMAKE_PREFIX_PATH ${QF_HOMEBREW_PREFIX})
set(ENV{PKG_CONFIG_PATH} "${QF_HOMEBREW_PREFIX}/lib/pkgconfig:$ENV{PKG_CONFIG_PATH}")

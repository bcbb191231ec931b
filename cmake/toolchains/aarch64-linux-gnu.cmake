# aarch64-linux-gnu.cmake - cross build for 64-bit Arm Linux (Snapdragon boards, Jetson, Raspberry
# Pi 4/5, Graviton) with Debian's cross compiler, and tests run under qemu-user.
#
#   apt-get install gcc-aarch64-linux-gnu qemu-user            # the compiler, the emulator
#   dpkg --add-architecture arm64 && apt-get update && apt-get install libcmocka-dev:arm64
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DQF_KERNELS_ONLY=ON && cmake --build build-aarch64 && ctest --test-dir build-aarch64
#
# (`make cross-aarch64` does all of it.) Libraries come from Debian's multiarch folders
# (/usr/lib/aarch64-linux-gnu, headers in /usr/include): the kernels-only build needs arm64
# cmocka alone. The full qfleet needs arm64 builds of all its libraries (libzmq3-dev:arm64 and
# the rest, or a sysroot given as CMAKE_SYSROOT). CTest runs each test binary through
# qemu-aarch64, which finds the arm64 loader and libraries in the same multiarch folders.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(QF_CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "Prefix of the cross tools")
set(CMAKE_C_COMPILER ${QF_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${QF_CROSS_PREFIX}g++)

# pkg-config (the full build) must see the arm64 .pc files, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
# Programs run here are the host's; libraries and headers are searched as usual, where the
# multiarch folder of CMAKE_LIBRARY_ARCHITECTURE comes before anything of the host's.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# ... and never the host's own multiarch folders, which CMake would otherwise also search.
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)

find_program(QF_QEMU_AARCH64 qemu-aarch64)
if(QF_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${QF_QEMU_AARCH64})
endif()

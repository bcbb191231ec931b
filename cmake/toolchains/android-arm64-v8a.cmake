# android-arm64-v8a.cmake - cross build for Android phones (arm64-v8a) with the Android NDK.
#
#   export ANDROID_NDK_HOME=/opt/android-ndk-r26d                # any NDK r23 or newer
#   cmake -S . -B build-android -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/android-arm64-v8a.cmake \
#         -DQF_KERNELS_ONLY=ON -DQF_DEPS_PREFIX=/path/to/cmocka-android
#   cmake --build build-android
#   adb push build-android/tests/test_quants /data/local/tmp/ && adb shell /data/local/tmp/test_quants
#
# This wraps the NDK's own toolchain file with quantfleet's choices: arm64-v8a, API level 29
# (Android 10, the oldest with the dotprod-capable cores the NEON kernels target), static libc++
# not needed (C only). The NDK has no cmocka, ZeroMQ or SQLite: the kernels-only build needs
# cmocka, built for Android and given as QF_DEPS_PREFIX (its usr/include and usr/lib); the
# agent needs the fleet's libraries built the same way. Not built in CI (no NDK on the runner).
if(DEFINED ENV{ANDROID_NDK_HOME})
  set(QF_ANDROID_NDK $ENV{ANDROID_NDK_HOME})
elseif(DEFINED ENV{ANDROID_NDK_ROOT})
  set(QF_ANDROID_NDK $ENV{ANDROID_NDK_ROOT})
endif()
if(NOT QF_ANDROID_NDK OR NOT EXISTS "${QF_ANDROID_NDK}/build/cmake/android.toolchain.cmake")
  message(FATAL_ERROR "android-arm64-v8a.cmake: set ANDROID_NDK_HOME to an Android NDK "
                      "(found: '${QF_ANDROID_NDK}')")
endif()

set(ANDROID_ABI arm64-v8a)
if(NOT ANDROID_PLATFORM)
  set(ANDROID_PLATFORM android-29)
endif()
set(ANDROID_STL none)
include("${QF_ANDROID_NDK}/build/cmake/android.toolchain.cmake")

# Libraries of QF_DEPS_PREFIX are searched too (the NDK toolchain confines searches to its sysroot).
if(QF_DEPS_PREFIX)
  list(APPEND CMAKE_FIND_ROOT_PATH "${QF_DEPS_PREFIX}")
endif()

# version.cmake - writes generated/qf_version.h from common/qf_version.h.in with the commit,
# dirty flag and branch of the source tree. Run at every build (the qf_version target), so a
# binary always names the commit it was built from; configure_file only touches the header
# when its text changes, so an unchanged commit rebuilds nothing.
# Inputs: SRC (source dir), OUT (header path), PROJECT_VERSION, CMAKE_C_COMPILER_ID,
# CMAKE_C_COMPILER_VERSION, CMAKE_BUILD_TYPE.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE QF_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
execute_process(COMMAND git rev-parse --abbrev-ref HEAD WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE QF_GIT_BRANCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE QF_GIT_STATUS OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT QF_GIT_COMMIT)
  set(QF_GIT_COMMIT "unknown")
endif()
if(QF_GIT_STATUS)
  set(QF_GIT_DIRTY 1)
else()
  set(QF_GIT_DIRTY 0)
endif()
configure_file(${SRC}/common/qf_version.h.in ${OUT} @ONLY)

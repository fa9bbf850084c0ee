# saga_options: an INTERFACE target every project target links, carrying the
# warning set, -Werror (SAGA_WERROR) and the sanitizers (SAGA_SANITIZE).
add_library(saga_options INTERFACE)
target_compile_options(saga_options INTERFACE
  -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wvla
  -Wpointer-arith -Wcast-qual -Wundef -Wno-unused-parameter)
target_compile_definitions(saga_options INTERFACE _GNU_SOURCE
  SAGA_VERSION="${PROJECT_VERSION}")
if(SAGA_WERROR)
  target_compile_options(saga_options INTERFACE -Werror)
endif()
if(SAGA_FUZZ)
  # Coverage instrumentation everywhere; the fuzz targets add the libFuzzer main.
  target_compile_options(saga_options INTERFACE -fsanitize=fuzzer-no-link)
endif()
if(SAGA_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_compile_options(saga_options INTERFACE ${_san})
  target_link_options(saga_options INTERFACE ${_san})
endif()

# saga_add_program(name SOURCES a.c ...): one executable in <build>/bin.
function(saga_add_program name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${P_SOURCES})
  target_link_libraries(${name} PRIVATE saga_common saga_options ${P_LIBS})
  install(TARGETS ${name} RUNTIME DESTINATION bin)
endfunction()

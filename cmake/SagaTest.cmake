pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

# saga_add_unit_test(name SOURCES a.c b.c [LIBS x y])
# One cmocka executable = one ctest test; no Kafka or Postgres needed.
function(saga_add_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE saga_common PkgConfig::CMOCKA saga_options ${T_LIBS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 60)
endfunction()

# saga_add_integration_test(name SOURCES a.c [LIBS x])
# Runs against the real Kafka and Postgres that the "stack" fixture starts;
# the test finds them through the stack.env file named by SAGA_STACK_ENV.
function(saga_add_integration_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE saga_common saga_testsupport PkgConfig::CMOCKA
    saga_options ${T_LIBS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT 300
    FIXTURES_REQUIRED stack ENVIRONMENT "SAGA_STACK_ENV=${SAGA_TEST_STACK_DIR}/stack.env")
endfunction()

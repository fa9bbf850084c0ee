# format / format-check: clang-format over every C file the project owns.
find_program(CLANG_FORMAT NAMES clang-format clang-format-14)
if(CLANG_FORMAT)
  file(GLOB_RECURSE SAGA_FORMAT_FILES CONFIGURE_DEPENDS
    ${PROJECT_SOURCE_DIR}/common/*.[ch] ${PROJECT_SOURCE_DIR}/services/*.[ch]
    ${PROJECT_SOURCE_DIR}/relay/*.[ch] ${PROJECT_SOURCE_DIR}/sagactl/*.[ch]
    ${PROJECT_SOURCE_DIR}/tests/*.[ch] ${PROJECT_SOURCE_DIR}/bench/*.[ch]
    ${PROJECT_SOURCE_DIR}/examples/*.[ch])
  add_custom_target(format COMMAND ${CLANG_FORMAT} -i ${SAGA_FORMAT_FILES}
    COMMENT "clang-format -i" VERBATIM)
  add_custom_target(format-check COMMAND ${CLANG_FORMAT} --dry-run -Werror ${SAGA_FORMAT_FILES}
    COMMENT "clang-format --dry-run -Werror" VERBATIM)
endif()

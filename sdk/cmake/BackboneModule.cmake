# SPDX-License-Identifier: GPL-3.0-or-later
# backbone_add_module(<target> SOURCES ... [OUTPUT_NAME name] [OUTPUT_DIRECTORY dir])
# Builds a Backbone module: a shared object exporting only bb_module_entry,
# with hidden visibility, static dependencies kept private, and no undefined
# symbols (a module never links against the kernel).
function(backbone_add_module target)
  cmake_parse_arguments(ARG "" "OUTPUT_NAME;OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  add_library(${target} MODULE ${ARG_SOURCES})
  if(TARGET Backbone::sdk)
    target_link_libraries(${target} PRIVATE Backbone::sdk)
  endif()
  if(NOT ARG_OUTPUT_NAME)
    set(ARG_OUTPUT_NAME ${target})
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${ARG_OUTPUT_NAME}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  endif()
  target_link_options(${target} PRIVATE
    "LINKER:--version-script=${CMAKE_CURRENT_FUNCTION_LIST_DIR}/module.map" "LINKER:--exclude-libs,ALL")
  # -z defs is incompatible with the sanitizer runtimes, which resolve at load time.
  if(NOT BACKBONE_SANITIZE)
    target_link_options(${target} PRIVATE "LINKER:-z,defs")
  endif()
endfunction()

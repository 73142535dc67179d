# Build helpers shared by the kernel, the plugins and the tests.

macro(hypernas_setup_ccache)
  if(HYPERNAS_CCACHE)
    find_program(HYPERNAS_CCACHE_PROGRAM ccache)
    if(HYPERNAS_CCACHE_PROGRAM)
      # NOTE: precompiled headers are only cacheable with these sloppiness settings.
      set(CMAKE_CXX_COMPILER_LAUNCHER
          ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
          ${HYPERNAS_CCACHE_PROGRAM})
    endif()
  endif()
endmacro()

macro(hypernas_find_dependencies)
  find_package(Torch REQUIRED)
  find_package(Boost 1.74 REQUIRED COMPONENTS filesystem)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(LUA REQUIRED IMPORTED_TARGET lua5.4-c++)
  find_package(cxxopts REQUIRED)
  find_package(SQLite3 REQUIRED)
  find_package(nlohmann_json 3 REQUIRED)
  find_package(ZLIB REQUIRED)
  find_package(Threads REQUIRED)
  # CUDA is optional: on when the LibTorch found was built with it and nvcc is present.
  set(HYPERNAS_WITH_CUDA OFF)
  if(TORCH_CUDA_LIBRARIES OR CUDA_FOUND)
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      set(HYPERNAS_WITH_CUDA ON)
    endif()
  endif()
  message(STATUS "HyperNAS: Torch ${Torch_VERSION}, CUDA support ${HYPERNAS_WITH_CUDA}")
endmacro()

# Warnings for every first-party target.
function(hypernas_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(HYPERNAS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

include("${CMAKE_CURRENT_LIST_DIR}/HyperNASPlugin.cmake")

# hypernas_add_plugin(NAME <name> DESCRIPTOR <file> [SOURCES <files...>] [LIBS <targets...>])
# A built-in plugin, built once and linked where it is needed:
#   hypernas_<name>_impl        OBJECT library of SOURCES, the implementation (no descriptor);
#                               tests and benchmarks link it to use the plugin's classes.
#   hypernas_<name>_descriptor  OBJECT library of DESCRIPTOR, the file with HYPERNAS_PLUGIN(...);
#                               only a test that calls the descriptor links it (one per binary).
#   hypernas_plugin_<name>      the run-time plugin, libhypernas_<name>.so in
#                               ${HYPERNAS_BUILD_PLUGIN_DIR}: both of the above, made by the
#                               SDK's hypernas_plugin() (MODULE, -z nodelete: objects made from
#                               it may outlive any handle), installed with the others.
# Every plugin is also a dependency of the custom target hypernas_plugins (plugins/CMakeLists.txt),
# which the tests that load plugins at run time depend on.
function(hypernas_add_plugin)
  cmake_parse_arguments(P "" "NAME;DESCRIPTOR" "SOURCES;LIBS" ${ARGN})
  if(NOT P_NAME OR NOT P_DESCRIPTOR OR P_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "hypernas_add_plugin(NAME <name> DESCRIPTOR <file> [SOURCES ...] [LIBS ...])")
  endif()
  set(objects)
  if(P_SOURCES)
    list(APPEND objects hypernas_${P_NAME}_impl)
    add_library(hypernas_${P_NAME}_impl OBJECT ${P_SOURCES})
  endif()
  list(APPEND objects hypernas_${P_NAME}_descriptor)
  add_library(hypernas_${P_NAME}_descriptor OBJECT ${P_DESCRIPTOR})
  foreach(lib ${objects})
    target_link_libraries(${lib} PUBLIC hypernas::sdk ${P_LIBS})
    # As the plugin compiled them before: only the descriptor is visible outside the library.
    set_target_properties(${lib} PROPERTIES CXX_VISIBILITY_PRESET hidden POSITION_INDEPENDENT_CODE ON)
    hypernas_warnings(${lib})
  endforeach()
  set(warnings WARNINGS)
  if(HYPERNAS_WERROR)
    set(warnings WARNINGS_AS_ERRORS)
  endif()
  hypernas_plugin(hypernas_plugin_${P_NAME} LIBS ${objects} ${P_LIBS}
    OUTPUT_NAME "hypernas_${P_NAME}"
    OUTPUT_DIRECTORY "${HYPERNAS_BUILD_PLUGIN_DIR}"
    INSTALL_DESTINATION "${HYPERNAS_INSTALL_PLUGIN_DIR}"
    ${warnings})
  add_dependencies(hypernas_plugins hypernas_plugin_${P_NAME})
endfunction()

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

# hypernas_add_plugin(NAME <name> SOURCES <files...> [LIBS <targets...>])
# Builds a run-time plugin: a MODULE library in ${HYPERNAS_BUILD_PLUGIN_DIR}, linked so it is
# never unloaded (objects made from it may outlive any handle), installed with the others.
function(hypernas_add_plugin)
  cmake_parse_arguments(P "" "NAME" "SOURCES;LIBS" ${ARGN})
  set(target hypernas_plugin_${P_NAME})
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE hypernas::sdk ${P_LIBS})
  target_link_options(${target} PRIVATE -Wl,-z,nodelete)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME "hypernas_${P_NAME}"
    LIBRARY_OUTPUT_DIRECTORY "${HYPERNAS_BUILD_PLUGIN_DIR}"
    CXX_VISIBILITY_PRESET hidden)
  hypernas_warnings(${target})
  install(TARGETS ${target} LIBRARY DESTINATION "${HYPERNAS_INSTALL_PLUGIN_DIR}")
endfunction()

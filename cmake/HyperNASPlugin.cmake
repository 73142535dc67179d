# For plugin authors building against the installed SDK:
#   find_package(HyperNAS REQUIRED)
#   hypernas_plugin(my_surrogate SOURCES my_surrogate.cpp)
# makes libhypernas_my_surrogate.so, a MODULE linked with -z nodelete; put it in a folder named
# by HYPERNAS_PLUGIN_PATH (or in ${HYPERNAS_PLUGIN_DIR}).
#
# hypernas_plugin(<name> SOURCES <files...> [LIBS <targets...>]
#                 [OUTPUT_NAME <file name>] [OUTPUT_DIRECTORY <dir>] [INSTALL_DESTINATION <dir>]
#                 [WARNINGS] [WARNINGS_AS_ERRORS])
#   SOURCES              the plugin's files; one of them holds HYPERNAS_PLUGIN(...). May also
#                        name object files ($<TARGET_OBJECTS:...>).
#   LIBS                 libraries linked in privately (object libraries add their objects).
#   OUTPUT_NAME          the library's name without "lib" and ".so" (default: hypernas_<name>).
#   OUTPUT_DIRECTORY     where the library is built (default: the current binary folder).
#   INSTALL_DESTINATION  installs the library to this folder (default: no install rule).
#   WARNINGS             compiles the sources with -Wall -Wextra.
#   WARNINGS_AS_ERRORS   the same warnings, as errors (-Werror).
# HyperNAS builds its own plugins with this function too (cmake/HyperNASHelpers.cmake).
function(hypernas_plugin name)
  cmake_parse_arguments(P "WARNINGS;WARNINGS_AS_ERRORS"
    "OUTPUT_NAME;OUTPUT_DIRECTORY;INSTALL_DESTINATION" "SOURCES;LIBS" ${ARGN})
  if(P_UNPARSED_ARGUMENTS)
    message(AUTHOR_WARNING "hypernas_plugin(${name}): ignoring unknown arguments ${P_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT P_OUTPUT_NAME)
    set(P_OUTPUT_NAME "hypernas_${name}")
  endif()
  add_library(${name} MODULE ${P_SOURCES})
  target_link_libraries(${name} PRIVATE hypernas::sdk ${P_LIBS})
  target_link_options(${name} PRIVATE -Wl,-z,nodelete)
  set_target_properties(${name} PROPERTIES OUTPUT_NAME "${P_OUTPUT_NAME}" PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden POSITION_INDEPENDENT_CODE ON)
  if(P_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${P_OUTPUT_DIRECTORY}")
  endif()
  if(P_WARNINGS OR P_WARNINGS_AS_ERRORS)
    target_compile_options(${name} PRIVATE -Wall -Wextra)
  endif()
  if(P_WARNINGS_AS_ERRORS)
    target_compile_options(${name} PRIVATE -Werror)
  endif()
  if(P_INSTALL_DESTINATION)
    install(TARGETS ${name} LIBRARY DESTINATION "${P_INSTALL_DESTINATION}")
  endif()
endfunction()

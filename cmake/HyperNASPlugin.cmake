# For plugin authors building against the installed SDK:
#   find_package(HyperNAS REQUIRED)
#   hypernas_plugin(my_surrogate SOURCES my_surrogate.cpp)
# makes libhypernas_my_surrogate.so, a MODULE linked with -z nodelete; put it in a folder named
# by HYPERNAS_PLUGIN_PATH (or in ${HYPERNAS_PLUGIN_DIR}).
function(hypernas_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} MODULE ${P_SOURCES})
  target_link_libraries(${name} PRIVATE hypernas::sdk ${P_LIBS})
  target_link_options(${name} PRIVATE -Wl,-z,nodelete)
  set_target_properties(${name} PROPERTIES OUTPUT_NAME "hypernas_${name}" PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden POSITION_INDEPENDENT_CODE ON)
endfunction()

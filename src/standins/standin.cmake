# Shared logic of the stand-in interface packages.
#
# A stand-in replaces an upstream ROS 2 interface package that PyPI does not carry
# (mavros_msgs, geographic_msgs). Where the real package is installed, as on a ROS 2
# Jazzy machine with ros-jazzy-mavros-msgs, the stand-in must build nothing, so that
# nothing in this workspace's install shadows the real one.
#
# dfr_standin_begin() returns from the calling CMakeLists when the real package is
# found; otherwise the caller generates its interfaces and calls dfr_standin_end().

# Marker file that tells a stand-in install apart from the real package.
set(DFR_STANDIN_MARKER "dfr_standin")

# Look for a real (non stand-in) install of PROJECT_NAME in every prefix that the
# environment and CMake know. Sets DFR_REAL_PACKAGE_PREFIX (empty when none).
function(dfr_find_real_package)
  set(prefixes ${CMAKE_PREFIX_PATH})
  foreach(var AMENT_PREFIX_PATH CMAKE_PREFIX_PATH)
    if(DEFINED ENV{${var}})
      string(REPLACE ":" ";" env_prefixes "$ENV{${var}}")
      list(APPEND prefixes ${env_prefixes})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES prefixes)
  set(found "")
  foreach(prefix IN LISTS prefixes)
    set(share "${prefix}/share/${PROJECT_NAME}")
    if(EXISTS "${share}/package.xml" AND NOT EXISTS "${share}/${DFR_STANDIN_MARKER}")
      set(found "${prefix}")
      break()
    endif()
  endforeach()
  set(DFR_REAL_PACKAGE_PREFIX "${found}" PARENT_SCOPE)
endfunction()

macro(dfr_standin_begin)
  option(DFR_FORCE_STANDIN "Build the stand-in even where the real package exists" OFF)
  dfr_find_real_package()
  if(DFR_REAL_PACKAGE_PREFIX AND NOT DFR_FORCE_STANDIN)
    message(STATUS
      "${PROJECT_NAME}: the real package is installed in ${DFR_REAL_PACKAGE_PREFIX}; "
      "the stand-in builds and installs nothing")
    # Remove what an earlier stand-in build installed here, so it cannot shadow.
    install(CODE "
      file(GLOB _stale_libs \"\${CMAKE_INSTALL_PREFIX}/lib/lib${PROJECT_NAME}__*\")
      file(GLOB _stale_py \"\${CMAKE_INSTALL_PREFIX}/local/lib/python3*/dist-packages/${PROJECT_NAME}*\"
        \"\${CMAKE_INSTALL_PREFIX}/lib/python3*/site-packages/${PROJECT_NAME}*\")
      file(GLOB _stale_index \"\${CMAKE_INSTALL_PREFIX}/share/ament_index/resource_index/*/${PROJECT_NAME}\")
      if(EXISTS \"\${CMAKE_INSTALL_PREFIX}/share/${PROJECT_NAME}/${DFR_STANDIN_MARKER}\")
        message(STATUS \"${PROJECT_NAME}: removing an earlier stand-in install\")
        file(REMOVE_RECURSE \"\${CMAKE_INSTALL_PREFIX}/share/${PROJECT_NAME}\"
          \"\${CMAKE_INSTALL_PREFIX}/include/${PROJECT_NAME}\" \${_stale_libs} \${_stale_py} \${_stale_index})
      endif()
    ")
    return()
  endif()
  message(STATUS "${PROJECT_NAME}: no real package found; building the stand-in")
endmacro()

macro(dfr_standin_end)
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/${DFR_STANDIN_MARKER}"
    "This ${PROJECT_NAME} is the dfr workspace's stand-in, built because the real package was missing.\n")
  install(FILES "${CMAKE_CURRENT_BINARY_DIR}/${DFR_STANDIN_MARKER}" DESTINATION "share/${PROJECT_NAME}")
endmacro()

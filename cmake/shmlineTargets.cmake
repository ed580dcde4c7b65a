# Defines the imported targets of shmline. Used by the installed shmlineConfig.cmake and by the
# source tree's CMakeLists.txt (add_subdirectory), so that both give the same targets:
#
#   shmline::shmline  the shared library; include/shmline.h
#   shmline::static   the static archive, linking the system libraries it needs
#   shmline::cpp      the header-only C++17 wrapper <shmline/shmline.hpp>, over shmline::shmline
#
# _shmline_add_targets([GLOBAL] SHARED <file> SONAME <soname> STATIC <file>
#                      INCLUDE_DIRS <dir>... CPP_INCLUDE_DIRS <dir>... SYSTEM_LIBS <lib>...)
function(_shmline_add_targets)
    cmake_parse_arguments(arg "GLOBAL" "SHARED;SONAME;STATIC"
                          "INCLUDE_DIRS;CPP_INCLUDE_DIRS;SYSTEM_LIBS" ${ARGN})
    set(scope "")
    if(arg_GLOBAL)
        set(scope GLOBAL)
    endif()

    add_library(shmline::shmline SHARED IMPORTED ${scope})
    set_target_properties(shmline::shmline PROPERTIES
        IMPORTED_LOCATION "${arg_SHARED}"
        IMPORTED_SONAME "${arg_SONAME}"
        INTERFACE_INCLUDE_DIRECTORIES "${arg_INCLUDE_DIRS}")

    add_library(shmline::static STATIC IMPORTED ${scope})
    set_target_properties(shmline::static PROPERTIES
        IMPORTED_LOCATION "${arg_STATIC}"
        IMPORTED_LINK_INTERFACE_LANGUAGES C
        INTERFACE_INCLUDE_DIRECTORIES "${arg_INCLUDE_DIRS}"
        INTERFACE_LINK_LIBRARIES "${arg_SYSTEM_LIBS}")

    add_library(shmline::cpp INTERFACE IMPORTED ${scope})
    set_target_properties(shmline::cpp PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${arg_CPP_INCLUDE_DIRS}"
        INTERFACE_LINK_LIBRARIES shmline::shmline
        INTERFACE_COMPILE_FEATURES cxx_std_17)
endfunction()

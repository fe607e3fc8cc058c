/*
 * negio's version: the one place it is written. CMakeLists.txt reads the three NEGIO_VERSION_*
 * numbers below for project(VERSION), so the libraries' file names and SONAMEs, negio.pc,
 * negioConfigVersion.cmake and `negio --version` all follow them (docs/ARCHITECTURE.md section 17).
 *
 * These macros are the version of the headers an application is compiled against;
 * negio_version() and negio_version_string() (negio.h) are the version of the library it runs
 * with. Within one SONAME (0.MINOR.x: libnegio.so.0.MINOR) a library may be older or newer than
 * the headers; negio_version() >= NEGIO_VERSION_NUMBER says it has everything they declare.
 */
#ifndef NEGIO_VERSION_H
#define NEGIO_VERSION_H

#define NEGIO_VERSION_MAJOR 0
#define NEGIO_VERSION_MINOR 2
#define NEGIO_VERSION_PATCH 0

#define NEGIO_STRINGIFY_(x) #x
#define NEGIO_STRINGIFY(x) NEGIO_STRINGIFY_(x)
/* "0.2.0" */
#define NEGIO_VERSION_STRING                                                                       \
    NEGIO_STRINGIFY(NEGIO_VERSION_MAJOR)                                                           \
    "." NEGIO_STRINGIFY(NEGIO_VERSION_MINOR) "." NEGIO_STRINGIFY(NEGIO_VERSION_PATCH)
/* 0xMMmmpp: one number that compares in version order (0x000200 for 0.2.0) */
#define NEGIO_VERSION_NUMBER                                                                       \
    ((NEGIO_VERSION_MAJOR << 16) | (NEGIO_VERSION_MINOR << 8) | NEGIO_VERSION_PATCH)

#endif /* NEGIO_VERSION_H */

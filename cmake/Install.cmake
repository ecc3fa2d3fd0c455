# Install layout and the Debian package (CPack). `cmake --install build` puts:
#   bin/telebridge, bin/telesim
#   share/telebridge/dashboard/            the built-in dashboard
#   TB_CONFDIR/telebridge.yaml             the example config, static_dir pointing at the
#                                          dashboard above; never overwrites an existing one
#   share/man/man1/telebridge.1, telesim.1, share/man/man5/telebridge.yaml.5
#   lib/systemd/system/telebridge.service  Type=notify, ExecReload = HUP, user telebridge
#   share/doc/telebridge/                  README, CHANGELOG, LICENSE (copyright), docs
# The config goes to /etc/telebridge whatever the prefix (TB_CONFDIR), as the unit expects.
include(GNUInstallDirs)

set(TB_CONFDIR "/etc/telebridge" CACHE PATH "Where the configuration is installed (absolute)")
set(TB_DASHBOARD_DIR "${CMAKE_INSTALL_FULL_DATADIR}/telebridge/dashboard")
set(TB_BINDIR "${CMAKE_INSTALL_FULL_BINDIR}")

install(TARGETS telebridge RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET telesim)
  install(TARGETS telesim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(DIRECTORY ${CMAKE_SOURCE_DIR}/dashboard/ DESTINATION ${CMAKE_INSTALL_DATADIR}/telebridge/dashboard
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# The example config with static_dir made absolute (the repository's is relative to config/).
file(READ ${CMAKE_SOURCE_DIR}/config/telebridge.yaml TB_EXAMPLE_CONFIG)
string(REPLACE "static_dir: ../dashboard     # the built-in dashboard, relative to this file"
               "static_dir: ${TB_DASHBOARD_DIR}   # the built-in dashboard (installed)"
               TB_INSTALLED_CONFIG "${TB_EXAMPLE_CONFIG}")
if(TB_INSTALLED_CONFIG STREQUAL TB_EXAMPLE_CONFIG)
  message(FATAL_ERROR "config/telebridge.yaml: the static_dir line changed; update cmake/Install.cmake")
endif()
file(WRITE ${CMAKE_BINARY_DIR}/packaging/telebridge.yaml "${TB_INSTALLED_CONFIG}")
# An existing (edited) config is kept; the new example goes next to it as .dist.
# (file(INSTALL) prepends DESTDIR itself; the EXISTS test must add it.)
install(CODE "
  set(dst \"\$ENV{DESTDIR}${TB_CONFDIR}/telebridge.yaml\")
  if(EXISTS \"\${dst}\")
    message(STATUS \"Keeping existing \${dst}; the new example is telebridge.yaml.dist\")
    file(INSTALL \"${CMAKE_BINARY_DIR}/packaging/telebridge.yaml\" DESTINATION \"${TB_CONFDIR}\"
         RENAME telebridge.yaml.dist PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  else()
    file(INSTALL \"${CMAKE_BINARY_DIR}/packaging/telebridge.yaml\" DESTINATION \"${TB_CONFDIR}\"
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
")

configure_file(${CMAKE_SOURCE_DIR}/packaging/telebridge.service.in
               ${CMAKE_BINARY_DIR}/packaging/telebridge.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/telebridge.service DESTINATION lib/systemd/system)

install(FILES ${CMAKE_SOURCE_DIR}/man/telebridge.1 ${CMAKE_SOURCE_DIR}/man/telesim.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_SOURCE_DIR}/man/telebridge.yaml.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)

set(TB_DOCDIR ${CMAKE_INSTALL_DATADIR}/doc/telebridge)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/CHANGELOG.md DESTINATION ${TB_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/LICENSE DESTINATION ${TB_DOCDIR} RENAME copyright)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${TB_DOCDIR}/docs FILES_MATCHING PATTERN "*.md" PATTERN "*.json")

# ---- Debian package: cpack -G DEB in a tree configured with -DCMAKE_INSTALL_PREFIX=/usr
# (the unit and the config name absolute paths under the prefix).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME telebridge)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Telebridge maintainers <telebridge@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "MQTT-to-WebSocket bridge for vehicle telemetry")
set(CPACK_PACKAGE_DESCRIPTION "Subscribes to an MQTT broker, maps topics to WebSocket endpoints and rooms with YAML routing rules, evaluates alert rules and serves a built-in dashboard. Includes the telesim vehicle simulator.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Shared libraries from dpkg-shlibdeps; the libev plugin libwebsockets loads at run time
# (dlopen, invisible to shlibdeps) and adduser (postinst) by hand.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libwebsockets-evlib-ev, adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mosquitto")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)

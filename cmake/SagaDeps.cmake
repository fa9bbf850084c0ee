# Every third-party library is a Debian package found through pkg-config;
# scripts/stack deps installs them (see README "Prerequisites").
find_package(PkgConfig REQUIRED)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka>=2.0)
pkg_check_modules(AVRO REQUIRED IMPORTED_TARGET avro-c>=1.11)
pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd>=0.9.71)
pkg_check_modules(JWT REQUIRED IMPORTED_TARGET libjwt>=1.10)
# OpenSSL 3 (libssl-dev, which libpq-dev brings): public keys from a JWKS (auth.c).
pkg_check_modules(CRYPTO REQUIRED IMPORTED_TARGET libcrypto>=3.0)
find_package(Threads REQUIRED)

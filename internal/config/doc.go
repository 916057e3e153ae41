// Package config holds every setting of every facestream binary in one place:
// the table returned by Settings. Environment variables and flags are read
// here and nowhere else.
//
// Each Setting has a dotted name, a flag, an environment variable
// (FACESTREAM_*), a default (taken from Default), a help text, whether it is
// secret, the binaries that use it and those that require it. A binary
// declares its flags with AddFlags and gets its Config from Load, which
// starts from Default, applies the environment (through an injected getenv),
// then the flags set on the command line (flags win), and validates. Mains
// pass os.Getenv; tests pass a map's lookup.
//
// Adding a setting takes a field in Config (with its default in Default) and
// one line in the table in settings.go; flags, environment, --help text,
// redaction and the deployment tests follow from the table.
//
// Secrets (the database URL, NATS credentials) have type Secret, whose
// String, GoString, LogValue and MarshalText hide them; Config's String and
// LogValue redact every secret and any password in a URL.
package config

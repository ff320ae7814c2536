#ifndef SOCKET_GATEWAY_CFUZZERDRIVER_H
#define SOCKET_GATEWAY_CFUZZERDRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry point for programs that keep their own `main` (compiler-rt FuzzerDriver.cpp). SwiftPM
/// renames every executable's `main` on Linux, so the targets call this from their main.swift rather than
/// link libFuzzer's own `main`.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif

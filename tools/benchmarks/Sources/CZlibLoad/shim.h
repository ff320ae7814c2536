#ifndef SOCKETGATEWAY_LOAD_CZLIB_SHIM_H
#define SOCKETGATEWAY_LOAD_CZLIB_SHIM_H
// The load tool's raw inflate for WebSocket permessage-deflate (RFC 7692), mirroring the main package's CZlib
// (a target of another package cannot be imported from here).
#include <zlib.h>

// inflateInit2 is a macro (it passes the library version and the stream size); Swift cannot call macros.
static inline int socketgateway_load_inflateInit2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}
#endif

#ifndef SOCKETGATEWAY_CZLIB_SHIM_H
#define SOCKETGATEWAY_CZLIB_SHIM_H
// Raw DEFLATE (negative window bits) for WebSocket permessage-deflate (RFC 7692): deflate* and inflate* only.
#include <zlib.h>

// deflateInit2 and inflateInit2 are macros (they pass the library version and the stream size); Swift cannot call
// macros, so these wrap them.
static inline int socketgateway_deflateInit2(z_streamp stream, int level, int windowBits, int memLevel) {
    return deflateInit2(stream, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}

static inline int socketgateway_inflateInit2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}
#endif

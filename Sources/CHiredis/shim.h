#ifndef SOCKETGATEWAY_CHIREDIS_SHIM_H
#define SOCKETGATEWAY_CHIREDIS_SHIM_H
// Only hiredis's RESP reply reader (redisReaderCreate/Feed/GetReply, freeReplyObject) is used.
#include <hiredis/hiredis.h>
#endif

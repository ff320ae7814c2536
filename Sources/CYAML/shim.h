#ifndef SOCKET_GATEWAY_CYAML_SHIM_H
#define SOCKET_GATEWAY_CYAML_SHIM_H
#include <yaml.h>
#endif

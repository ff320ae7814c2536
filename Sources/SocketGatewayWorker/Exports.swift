// What a worker user needs besides this module, as for the server: the core (JSONValue, the emit protocol,
// typed events) whole, and from the Redis module only the status type that `WorkerSocketGateway.status` returns
// and the TLS settings its init takes.
// The Redis module itself is `package`, not a product.
@_exported public import SocketGatewayCore

@_exported public import enum SocketGatewayRedis.RedisChannelMode
@_exported public import struct SocketGatewayRedis.RedisPublisherStatus
@_exported public import struct SocketGatewayRedis.RedisTLSConfiguration

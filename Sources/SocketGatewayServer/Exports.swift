// What a server user needs besides this module, without importing the lower modules: the core (JSONValue, the
// emit protocol, typed events) whole, and from the Engine.IO module only the types that SocketServer's
// configuration and init take. Everything else in SocketGatewayEngineIO is `package`: the engine room stays in.
// (Scoped re-exports, not typealiases: with MemberImportVisibility a typealias would not bring `.any` along.)
@_exported public import SocketGatewayCore

@_exported public import enum SocketGatewayEngineIO.CORSPolicy
@_exported public import protocol SocketGatewayEngineIO.HTTPFallbackResponder
@_exported public import struct SocketGatewayEngineIO.HTTPFallbackResponse
@_exported public import enum SocketGatewayRedis.RedisChannelMode
// TLS settings for Redis, which ``SocketServerRedisConfiguration/tls`` takes.
@_exported public import struct SocketGatewayRedis.RedisTLSConfiguration

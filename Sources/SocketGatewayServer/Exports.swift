// Users of the server get JSONValue, the emit protocol and CORSPolicy without importing the lower modules.
@_exported public import SocketGatewayCore
@_exported public import SocketGatewayEngineIO

// The payload, client event and ack types of this module are generated at build time by SocketGatewayEventsPlugin
// from events.yaml, a copy of Tests/EventCodegenTests/Fixtures/golden/both-ways/events.yaml (tools/regenerate-golden
// keeps the two identical). EventCodegenTests and SocketGatewayServerTests call the generated code.

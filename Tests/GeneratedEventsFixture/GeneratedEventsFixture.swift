// The payload types of this module are generated at build time by SocketGatewayEventsPlugin from events.yaml,
// a copy of Tests/EventCodegenTests/Fixtures/golden/kitchen-sink/events.yaml (tools/regenerate-golden keeps
// the two identical). EventCodegenTests calls the generated code.

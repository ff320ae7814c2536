// The event types of this module are generated at build time from events.yaml by SocketGatewayEventsPlugin.

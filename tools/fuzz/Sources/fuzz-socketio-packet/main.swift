import FuzzSupport

runLibFuzzer(fuzzSocketIOPacket)

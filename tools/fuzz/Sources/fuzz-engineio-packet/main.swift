import FuzzSupport

runLibFuzzer(fuzzEngineIOPacket)

import FuzzSupport

runLibFuzzer(fuzzPubSub)

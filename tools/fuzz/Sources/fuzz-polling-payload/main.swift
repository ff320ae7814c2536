import FuzzSupport

runLibFuzzer(fuzzPollingPayload)

import FuzzSupport

runLibFuzzer(fuzzCatalog)

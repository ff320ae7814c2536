import NIOCore
import Testing

@testable import SocketGatewayServer

/// When a key set is fetched, at synthetic times: first use, staleness, unknown kids, the minimum interval between
/// fetches, one fetch at a time, and failures that keep the last good set.
@Suite struct JWKSRefreshStateMachineTests {
    typealias Machine = JWKSRefreshStateMachine
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func at(_ seconds: Int64) -> NIODeadline { self.start + .seconds(seconds) }
    func machine() -> Machine { Machine(refreshInterval: .seconds(300), minimumFetchInterval: .seconds(30)) }

    @Test func firstUseFetchesAndOthersWaitOnlyForAnUnknownKey() {
        var machine = self.machine()
        #expect(machine.keysNeeded(.unknownKey, at: self.at(0)) == .fetch)
        #expect(machine.isFetching)
        #expect(machine.keysNeeded(.unknownKey, at: self.at(0)) == .waitForFetch)
        #expect(machine.keysNeeded(.knownKey, at: self.at(0)) == .useCurrent)
        machine.fetchSucceeded(at: self.at(1))
        #expect(!machine.isFetching)
        #expect(machine.keysNeeded(.knownKey, at: self.at(2)) == .useCurrent)
    }

    @Test func anUnknownKeyFetchesAtMostOncePerMinimumInterval() {
        var machine = self.machine()
        #expect(machine.keysNeeded(.unknownKey, at: self.at(0)) == .fetch)
        machine.fetchSucceeded(at: self.at(0))
        // A flood of unknown kids inside the interval causes no fetch.
        for second in Int64(1)..<30 {
            #expect(machine.keysNeeded(.unknownKey, at: self.at(second)) == .useCurrent)
        }
        #expect(machine.keysNeeded(.unknownKey, at: self.at(30)) == .fetch)
        machine.fetchSucceeded(at: self.at(30))
        #expect(machine.keysNeeded(.unknownKey, at: self.at(59)) == .useCurrent)
        #expect(machine.keysNeeded(.unknownKey, at: self.at(60)) == .fetch)
    }

    @Test func aStaleSetIsFetchedAgainByTheNextUse() {
        var machine = self.machine()
        #expect(machine.keysNeeded(.unknownKey, at: self.at(0)) == .fetch)
        machine.fetchSucceeded(at: self.at(0))
        #expect(machine.keysNeeded(.knownKey, at: self.at(299)) == .useCurrent)
        #expect(machine.keysNeeded(.knownKey, at: self.at(300)) == .fetch)
        // While that fetch runs, callers with a known key do not wait; those with an unknown one do.
        #expect(machine.keysNeeded(.knownKey, at: self.at(300)) == .useCurrent)
        #expect(machine.keysNeeded(.unknownKey, at: self.at(300)) == .waitForFetch)
        machine.fetchSucceeded(at: self.at(301))
        #expect(machine.keysNeeded(.knownKey, at: self.at(302)) == .useCurrent)
        #expect(machine.keysNeeded(.knownKey, at: self.at(601)) == .fetch)
    }

    @Test func aFailedFetchIsRetriedAfterTheMinimumIntervalNotBefore() {
        var machine = self.machine()
        #expect(machine.keysNeeded(.unknownKey, at: self.at(0)) == .fetch)
        machine.fetchSucceeded(at: self.at(0))
        #expect(machine.keysNeeded(.knownKey, at: self.at(300)) == .fetch)
        machine.fetchFailed(at: self.at(305))
        // The set is still stale, but the last attempt was at 300: no new fetch before 330.
        #expect(machine.keysNeeded(.knownKey, at: self.at(310)) == .useCurrent)
        #expect(machine.keysNeeded(.unknownKey, at: self.at(329)) == .useCurrent)
        #expect(machine.keysNeeded(.knownKey, at: self.at(330)) == .fetch)
        machine.fetchFailed(at: self.at(331))
        #expect(machine.keysNeeded(.knownKey, at: self.at(360)) == .fetch)
        machine.fetchSucceeded(at: self.at(361))
        #expect(machine.keysNeeded(.knownKey, at: self.at(362)) == .useCurrent)
    }

    @Test func aFailedFirstFetchLeavesNoSetAndIsRetriedByTheInterval() {
        var machine = self.machine()
        #expect(machine.keysNeeded(.unknownKey, at: self.at(0)) == .fetch)
        machine.fetchFailed(at: self.at(5))
        #expect(machine.keysNeeded(.unknownKey, at: self.at(29)) == .useCurrent)
        #expect(machine.keysNeeded(.unknownKey, at: self.at(30)) == .fetch)
    }
}

package import NIOCore

/// When a JSON Web Key Set is fetched again: on first use, when the set is older than the refresh interval, and
/// when a token names a key (`kid`) the set does not hold — but never more often than once per minimum interval,
/// and one fetch at a time. A failed fetch keeps the last good set. Time is passed in; the owner does the I/O.
package struct JWKSRefreshStateMachine: Sendable {
    /// Why the keys are asked for.
    package enum Need: Sendable, Hashable {
        /// A token names a key the current set holds.
        case knownKey
        /// A token names a key the current set does not hold (or there is no set yet).
        case unknownKey
    }

    /// What the owner does next.
    package enum Action: Sendable, Hashable {
        /// Use the set held now (it may be empty: then the key is unknown).
        case useCurrent
        /// Fetch the set, then call ``fetchSucceeded(at:)`` or ``fetchFailed(at:)``, then use the set.
        case fetch
        /// Another caller is fetching: wait until it reports, then use the set.
        case waitForFetch
    }

    /// How old a set may grow before the next use fetches it again.
    package let refreshInterval: TimeAmount
    /// The shortest time between two fetches, whatever asks for them.
    package let minimumFetchInterval: TimeAmount
    private var lastAttempt: NIODeadline?
    private var lastSuccess: NIODeadline?
    private var fetching = false

    /// Creates the machine: no set fetched yet.
    package init(refreshInterval: TimeAmount, minimumFetchInterval: TimeAmount) {
        self.refreshInterval = refreshInterval
        self.minimumFetchInterval = minimumFetchInterval
    }

    /// Whether a fetch is running.
    package var isFetching: Bool { self.fetching }

    /// A token needs a key at `now`.
    package mutating func keysNeeded(_ need: Need, at now: NIODeadline) -> Action {
        if self.fetching {
            // A caller whose key is in the set does not wait for a fetch it did not need.
            return need == .unknownKey ? .waitForFetch : .useCurrent
        }
        let stale = self.lastSuccess.map { now - $0 >= self.refreshInterval } ?? true
        guard need == .unknownKey || stale else { return .useCurrent }
        if let lastAttempt, now - lastAttempt < self.minimumFetchInterval { return .useCurrent }
        self.fetching = true
        self.lastAttempt = now
        return .fetch
    }

    /// The fetch started by ``keysNeeded(_:at:)`` delivered a usable set at `now`.
    package mutating func fetchSucceeded(at now: NIODeadline) {
        self.fetching = false
        self.lastSuccess = now
    }

    /// The fetch failed at `now`: the last good set stays, and the next fetch waits for the minimum interval.
    package mutating func fetchFailed(at now: NIODeadline) {
        self.fetching = false
    }
}

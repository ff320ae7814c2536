import Crypto
import Foundation

/// Mints HS256 JWTs the way an application backend would: `{"sub": user, "exp": now + 1 h}`.
struct TokenMinter: Sendable {
    let secret: [UInt8]

    init(secret: String) {
        self.secret = Array(secret.utf8)
    }

    /// A token for `user`.
    func token(for user: String) -> String {
        let header = Self.base64URL(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let expiry = Int(Date().timeIntervalSince1970) + 3600
        let claims = Self.base64URL(Data(#"{"sub":"\#(user)","exp":\#(expiry)}"#.utf8))
        let input = header + "." + claims
        let signature = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: self.secret))
        return input + "." + Self.base64URL(Data(signature))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

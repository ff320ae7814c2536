extension JSONValue: CustomStringConvertible {
    /// The compact JSON text, as `jsonString` (binary attachments appear as `null`).
    public var description: String {
        self.jsonString
    }
}

import NIOCore
import SocketGatewayCore
import Testing

@Suite struct JSONWriterTests {
    /// (input, JSON.stringify(Number(input)), json.dumps(float(input))) — produced by Node 20 and CPython 3.11.
    static let numberTable: [(Double, String, String)] = [
        (0.1, "0.1", "0.1"),
        (1.5, "1.5", "1.5"),
        (-2.25, "-2.25", "-2.25"),
        (100, "100", "100.0"),
        (1e21, "1e+21", "1e+21"),
        (1e20, "100000000000000000000", "1e+20"),
        (123_456_789_012_345_683_968, "123456789012345680000", "1.2345678901234568e+20"),
        (1e-7, "1e-7", "1e-07"),
        (1.5e-7, "1.5e-7", "1.5e-07"),
        (0.000001, "0.000001", "1e-06"),
        (0.0000012345, "0.0000012345", "1.2345e-06"),
        (1e16, "10000000000000000", "1e+16"),
        (1e15, "1000000000000000", "1000000000000000.0"),
        (1234567890123456.7, "1234567890123456.8", "1234567890123456.8"),
        (12_345_678_901_234_568, "12345678901234568", "1.2345678901234568e+16"),
        (0.0001, "0.0001", "0.0001"),
        (0.00001, "0.00001", "1e-05"),
        (-0.0, "0", "-0.0"),
        (0.0, "0", "0.0"),
        (.leastNonzeroMagnitude, "5e-324", "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308", "1.7976931348623157e+308"),
        (2.5e-5, "0.000025", "2.5e-05"),
        (3.14159, "3.14159", "3.14159"),
        (1e100, "1e+100", "1e+100"),
        (1.0000000000000002, "1.0000000000000002", "1.0000000000000002"),
        (9_007_199_254_740_992, "9007199254740992", "9007199254740992.0"),
        (0.3, "0.3", "0.3"),
        (4.35, "4.35", "4.35"),
        (123e-20, "1.23e-18", "1.23e-18"),
        (-1e-7, "-1e-7", "-1e-07"),
        (.nan, "null", "NaN"),
        (.infinity, "null", "Infinity"),
        (-.infinity, "null", "-Infinity"),
    ]

    @Test func doublesAreWrittenAsJavaScriptAndPythonWriteThem() {
        for (value, javaScript, python) in Self.numberTable {
            #expect(JSONValue.double(value).jsonString == javaScript, "JavaScript form of \(value)")
            #expect(JSONValue.double(value).pythonJSONString == python, "Python form of \(value)")
        }
    }

    @Test func doublesRoundTripThroughTheParser() throws {
        for (value, javaScript, python) in Self.numberTable where value.isFinite {
            let fromJS = try JSONValue.parse(javaScript).doubleValue
            #expect(fromJS == (value == 0 ? 0 : value), "\(javaScript)")
            #expect(try JSONValue.parse(python).doubleValue == value, "\(python)")
        }
    }

    @Test func integers() {
        #expect(JSONValue.int(0).jsonString == "0")
        #expect(JSONValue.int(7).jsonString == "7")
        #expect(JSONValue.int(-7).jsonString == "-7")
        #expect(JSONValue.int(1_234_567_890).jsonString == "1234567890")
        #expect(JSONValue.int(.max).jsonString == "9223372036854775807")
        #expect(JSONValue.int(.min).jsonString == "-9223372036854775808")
        #expect(JSONValue.int(.min).pythonJSONString == "-9223372036854775808")
    }

    @Test func javaScriptStringEscapes() {
        // JSON.stringify({s:'é😀\x7f\x01"\\/\n\t\u2028'}) in Node 20.
        let value: JSONValue = ["s": "é😀\u{7F}\u{1}\"\\/\n\t\u{2028}", "a": [1, 2.0, nil, true, [:]], "e": []]
        #expect(
            value.jsonString == "{\"s\":\"é😀\u{7F}\\u0001\\\"\\\\/\\n\\t\u{2028}\",\"a\":[1,2,null,true,{}],\"e\":[]}"
        )
        #expect(JSONValue.string("\u{8}\u{C}\r\u{1F}\u{0}").jsonString == #""\b\f\r\u001f\u0000""#)
        #expect(JSONValue.string("").jsonString == #""""#)
    }

    @Test func pythonJSONDumpsDefaults() {
        // json.dumps({'s': 'é😀\x7f\x01"\\/\n\t\u2028', 'a': [1, 2.0, None, True, {}], 'e': []}) in CPython 3.11.
        let value: JSONValue = ["s": "é😀\u{7F}\u{1}\"\\/\n\t\u{2028}", "a": [1, 2.0, nil, true, [:]], "e": []]
        #expect(
            value.pythonJSONString
                == #"{"s": "\u00e9\ud83d\ude00\u007f\u0001\"\\/\n\t\u2028", "a": [1, 2.0, null, true, {}], "e": []}"#
        )
        #expect(
            JSONValue.array(["x", .double(.nan), .double(.infinity), .double(-.infinity)]).pythonJSONString
                == #"["x", NaN, Infinity, -Infinity]"#
        )
        let message: JSONValue = [
            "method": "emit", "event": "chat", "data": ["hi", 1], "binary": false, "namespace": "/", "room": nil,
            "skip_sid": nil, "callback": nil, "host_id": "0123456789abcdef0123456789abcdef",
        ]
        #expect(
            message.pythonJSONString
                == #"{"method": "emit", "event": "chat", "data": ["hi", 1], "binary": false, "namespace": "/", "room": null, "skip_sid": null, "callback": null, "host_id": "0123456789abcdef0123456789abcdef"}"#
        )
    }

    @Test func binaryDeconstructionMatchesPythonSocketIO() throws {
        // python-socketio: json.dumps([Packet.deconstruct_binary(data)[0], *base64 attachments]) for
        // data = ['file', {'a': b'\x01\x02', 'b': [b'\xff']}].
        let data: JSONValue = [
            "file", ["a": .binary(ByteBuffer(bytes: [1, 2])), "b": [.binary(ByteBuffer(bytes: [0xFF]))]],
        ]
        #expect(data.containsBinary)
        let (plain, attachments) = data.deconstructingBinary()
        #expect(!plain.containsBinary)
        #expect(attachments == [ByteBuffer(bytes: [1, 2]), ByteBuffer(bytes: [0xFF])])
        let message: JSONValue = .array([plain, "AQI=", "/w=="])
        #expect(
            message.pythonJSONString
                == #"[["file", {"a": {"_placeholder": true, "num": 0}, "b": [{"_placeholder": true, "num": 1}]}], "AQI=", "/w=="]"#
        )
        #expect(try plain.reconstructingBinary(attachments) == data)
        #expect(throws: SocketIOProtocolError.self) { try plain.reconstructingBinary([ByteBuffer(bytes: [1])]) }
        #expect(!JSONValue.array([1, ["x": "y"]]).containsBinary)
    }

    @Test func writeAppendsToTheBuffer() {
        var buffer = ByteBuffer(string: "4")
        JSONValue.array(["a", 1]).write(to: &buffer)
        #expect(String(buffer: buffer) == #"4["a",1]"#)
        var python = ByteBuffer(string: ">")
        JSONValue.array(["a", 1]).writePythonJSON(to: &python)
        #expect(String(buffer: python) == #">["a", 1]"#)
    }

    @Test func binaryIsWrittenAsNullOutsideSocketIO() {
        let value: JSONValue = ["file": .binary(ByteBuffer(bytes: [1, 2, 3]))]
        #expect(value.jsonString == #"{"file":null}"#)
        #expect(value.pythonJSONString == #"{"file": null}"#)
        #expect(value.description == value.jsonString)
    }

    static let roundTrips: [String] = [
        #"["message",1,"2",{"3":[true]}]"#,
        #"{"z":1,"a":{"b":[{},[],null,false,-1.5,1e+21,"x\"y"]}}"#,
        #"{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
        #""\u0000\u001f\b\f\n\r\t\\\"/é😀""#,
        #"[0.1,-0.000001,123456789,9223372036854775807,-9223372036854775808]"#,
        #"{"emoji":"👩‍👩‍👧‍👦","cjk":"中文","rtl":"עברית"}"#,
    ]

    @Test(arguments: roundTrips)
    func compactTextRoundTripsByteForByte(_ text: String) throws {
        #expect(try JSONValue.parse(text).jsonString == text)
    }

    @Test func escapedInputIsNormalizedToJavaScriptOutput() throws {
        #expect(
            try JSONValue.parse(#" { "a" : [ 1 , 2 ] , "\u00e9\/" : "\u20ac" } "#).jsonString
                == #"{"a":[1,2],"é/":"€"}"#
        )
        #expect(try JSONValue.parse("1.0").jsonString == "1")
        #expect(try JSONValue.parse("1E2").jsonString == "100")
        #expect(try JSONValue.parse("-0").jsonString == "0")
    }

    @Test func literals() {
        let value: JSONValue = ["n": nil, "b": false, "i": 3, "d": 0.5, "s": "x", "a": [1, "2"]]
        #expect(value.jsonString == #"{"n":null,"b":false,"i":3,"d":0.5,"s":"x","a":[1,"2"]}"#)
    }
}

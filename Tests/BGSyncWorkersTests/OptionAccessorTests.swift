// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import BGSyncWorkers
import Foundation
import Testing

/// The typed option accessors of bgsync_host, seen from a C plugin ("options", which echoes
/// each option as `name:type=value;` in the order option_name gives them).
@Suite("Option accessors through a real worker")
struct OptionAccessorTests {
    func echo(_ options: [String: Value], sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        guard let (worker, plugins) = TestEnvironment.require(sourceLocation: sourceLocation) else { return nil }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["options"], maxWorkers: 1)
        let outcome = harness.run(makeEvent(handler: "options", options: options), sourceLocation: sourceLocation)
        guard case .success(let detail) = outcome?.kind else {
            Issue.record(
                "The options plugin did not succeed: \(String(describing: outcome))", sourceLocation: sourceLocation)
            return nil
        }
        return detail
    }

    @Test("strings, booleans and every integer type, in byte order of names")
    func scalars() {
        let detail = echo([
            "s": .string("héllo"), "o": .objectPath("/org/x"), "g": .signature("a{sv}"), "b": .bool(true),
            "y": .byte(200), "n": .int16(-3), "q": .uint16(65535), "i": .int32(-70000), "u": .uint32(4_000_000_000),
            "x": .int64(-9_000_000_000), "t": .uint64(UInt64.max), "B": .bool(false),
        ])
        #expect(
            detail
                == "B:b=false;b:b=true;g:g=a{sv};i:i=-70000;n:n=-3;o:o=/org/x;q:q=65535;s:s=héllo;t:t=!int;u:u=4000000000;x:x=-9000000000;y:y=200;"
        )
    }

    @Test("doubles (also from integers), string arrays, string dictionaries and bytes")
    func containers() {
        let detail = echo([
            "d": .double(2.5), "double-i": .int32(7),
            "as": .array(elementSignature: "s", [.string("a"), .string("b c")]),
            "empty": .array(elementSignature: "s", []),
            "dict": .dictionary(
                keySignature: "s", valueSignature: "s",
                [.init(key: .string("k"), value: .string("v")), .init(key: .string("a"), value: .string("z"))]),
            "sv": .dictionary(
                keySignature: "s", valueSignature: "v",
                [
                    .init(key: .string("n"), value: .variant(.int32(1))),
                    .init(key: .string("s"), value: .variant(.string("t"))),
                ]),
            "ay": .array(elementSignature: "y", [.byte(0), .byte(0xff), .byte(0x10)]),
            "wrapped": .variant(.string("inside")),
        ])
        #expect(
            detail
                == "as:as=[a,b c];ay:ay=3:00ff10;d:d=2.5;dict:a{ss}={k=v,a=z};double-i:i=7;empty:as=[];sv:a{sv}={n=NULL,s=t};wrapped:s=inside;"
        )
    }

    @Test("option_text prints any option as GVariant text")
    func text() {
        let detail = echo([
            "text-u": .uint32(7), "text-s": .string("it's"), "text-as": .array(elementSignature: "s", []),
            "text-tuple": .structure([.int32(1), .variant(.int64(2))]),
            "text-dict": .dictionary(
                keySignature: "s", valueSignature: "v", [.init(key: .string("a"), value: .variant(.bool(true)))]),
            "text-d": .double(3), "text-ay": .array(elementSignature: "y", [.byte(1), .byte(2)]),
        ])
        #expect(
            detail
                == #"text-as:as=@as [];text-ay:ay=[byte 0x01, 0x02];text-d:d=3.0;text-dict:a{sv}={'a': <true>};text-s:s="it's";text-tuple:(iv)=(1, <int64 2>);text-u:u=uint32 7;"#
        )
    }

    @Test("no options: nothing to echo, and absent options read as NULL/false")
    func none() {
        #expect(echo([:]) == "")
    }
}

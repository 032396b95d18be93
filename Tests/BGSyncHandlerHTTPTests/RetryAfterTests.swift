// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerHTTP
import Foundation
import Testing

/// A server's Retry-After, in either of its two forms, as the seconds a handler asks to wait.
@Suite struct RetryAfterTests {
    @Test func readsSecondsAndHTTPDates() {
        let now = Date(timeIntervalSince1970: 784_111_777)  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryAfter.seconds("120", now: now) == 120)
        #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:50:37 GMT", now: now) == 60)
        #expect(RetryAfter.seconds("Sunday, 06-Nov-94 08:49:47 GMT", now: now) == 10)
        #expect(RetryAfter.seconds("Sun Nov  6 08:49:37 1994", now: now) == 0)
        #expect(RetryAfter.seconds("soon", now: now) == nil)
    }

    /// The obsolete form's two-digit year is read against `now`, never the day the suite runs:
    /// "94" is 2094 seen from 2090 (four years ahead), and 1994 seen from 1994.
    @Test func aTwoDigitYearIsReadAgainstNowNotTodaysDate() {
        let in2090 = Date(timeIntervalSince1970: 3_813_000_000)  // 2090-10-29
        let ahead = RetryAfter.seconds("Saturday, 06-Nov-94 08:49:37 GMT", now: in2090)
        #expect(ahead == Date(timeIntervalSince1970: 3_939_871_777).timeIntervalSince(in2090))  // 2094-11-06
        let in1994 = Date(timeIntervalSince1970: 784_111_777)
        #expect(RetryAfter.seconds("Sunday, 06-Nov-94 08:49:47 GMT", now: in1994) == 10)
    }
}

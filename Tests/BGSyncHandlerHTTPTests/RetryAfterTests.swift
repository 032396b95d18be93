// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerHTTP
import Testing

/// A server's Retry-After, in either of its two forms, as the seconds a handler asks to wait.
@Suite struct RetryAfterTests {
    @Test func readsSecondsAndHTTPDates() {
        let now = 784_111_777.0  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryAfter.seconds("120", now: now) == 120)
        #expect(RetryAfter.seconds(" 7 ", now: now) == 7)
        #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:50:37 GMT", now: now) == 60)
        #expect(RetryAfter.seconds("Sunday, 06-Nov-94 08:49:47 GMT", now: now) == 10)
        #expect(RetryAfter.seconds("Sun Nov  6 08:49:37 1994", now: now) == 0)
        #expect(RetryAfter.seconds("Sat, 05 Nov 1994 08:49:37 GMT", now: now) == 0)
        #expect(RetryAfter.seconds("soon", now: now) == nil)
        #expect(RetryAfter.seconds("", now: now) == nil)
    }

    /// The obsolete form's two-digit year is read against `now`, never the day the suite runs:
    /// "94" is 2094 seen from 2090 (four years ahead), and 1994 seen from 1994.
    @Test func aTwoDigitYearIsReadAgainstNowNotTodaysDate() {
        let in2090 = 3_813_000_000.0  // 2090-10-29
        let in2094 = 3_939_871_777.0  // 2094-11-06 08:49:37
        #expect(RetryAfter.seconds("Saturday, 06-Nov-94 08:49:37 GMT", now: in2090) == in2094 - in2090)
        let in1994 = 784_111_777.0
        #expect(RetryAfter.seconds("Sunday, 06-Nov-94 08:49:47 GMT", now: in1994) == 10)
        // libcurl's own window reads "50" as 2050 on any date: from 1994 that is more than 50
        // years ahead, so RFC 9110 makes it 1950, long past.
        #expect(RetryAfter.seconds("Sunday, 06-Nov-50 08:49:37 GMT", now: in1994) == 0)
    }
}

// SPDX-License-Identifier: Apache-2.0
import CCurl
import Glibc

/// Options holding URLs, checked with libcurl's own URL parser: the one that will send them.
public enum HTTPURL {
    /// `text` if it is an http or https URL with a host, else nil.
    public static func check(_ text: String) -> String? {
        guard let handle = curl_url() else { return nil }
        defer { curl_url_cleanup(handle) }
        guard curl_url_set(handle, CURLUPART_URL, text, 0) == CURLUE_OK else { return nil }
        guard let scheme = part(handle, CURLUPART_SCHEME)?.lowercased(), scheme == "http" || scheme == "https",
            let host = part(handle, CURLUPART_HOST), !host.isEmpty
        else { return nil }
        return text
    }

    /// `reference` (a Location header: absolute, or relative as RFC 3986 section 5 reads it)
    /// made absolute against `base`, if the result is an http or https URL with a host.
    public static func resolve(_ reference: String, against base: String) -> String? {
        guard let handle = curl_url() else { return nil }
        defer { curl_url_cleanup(handle) }
        // A relative URL set on a handle that holds one is resolved against it, as libcurl
        // follows a redirect's Location.
        guard curl_url_set(handle, CURLUPART_URL, base, 0) == CURLUE_OK,
            curl_url_set(handle, CURLUPART_URL, reference, 0) == CURLUE_OK,
            let resolved = part(handle, CURLUPART_URL)
        else { return nil }
        return check(resolved)
    }

    private static func part(_ handle: OpaquePointer, _ which: CURLUPart) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard curl_url_get(handle, which, &value, 0) == CURLUE_OK, let value else { return nil }
        defer { curl_free(value) }
        return String(cString: value)
    }
}

/// Parses Retry-After: delta-seconds or an HTTP-date (RFC 9110: IMF-fixdate and the two
/// obsolete forms, which libcurl's date parser reads).
public enum RetryAfter {
    /// Seconds to wait from `now` (Unix seconds), never negative; nil for text that is neither.
    public static func seconds(_ text: String, now: Double) -> Double? {
        let trimmed = text.trimmingASCIISpaces
        if !trimmed.isEmpty, trimmed.utf8.allSatisfy({ (0x30...0x39).contains($0) }) {
            return UInt64(trimmed).map { Double($0) } ?? Double(UInt64.max)
        }
        var reference = time_t(now)
        var date = curl_getdate(trimmed, &reference)
        guard date != -1 else { return nil }
        if hasTwoDigitYear(trimmed) { date = rewindowed(date, now: reference) }
        return max(0, Double(date) - now)
    }

    /// Whether `text` is the obsolete rfc850-date ("Sunday, 06-Nov-94 08:49:37 GMT"), whose
    /// date is DD-Mon-YY.
    static func hasTwoDigitYear(_ text: String) -> Bool {
        text.split(separator: " ").contains { token in
            let parts = token.split(separator: "-", omittingEmptySubsequences: false)
            return parts.count == 3 && parts[2].utf8.count == 2
                && parts[2].utf8.allSatisfy { (0x30...0x39).contains($0) }
        }
    }

    /// RFC 9110: a two-digit year that appears more than 50 years in the future is the most
    /// recent past year with those digits. libcurl reads 70–99 as 19xx and 00–69 as 20xx
    /// whatever the date, so "94" would be 1994 in 2090; this reads it against `now` instead.
    static func rewindowed(_ date: time_t, now: time_t) -> time_t {
        var parsed = tm()
        var today = tm()
        var date = date
        var now = now
        guard gmtime_r(&date, &parsed) != nil, gmtime_r(&now, &today) != nil else { return date }
        let digits = Int(parsed.tm_year + 1900) % 100
        let latest = Int(today.tm_year + 1900) + 50  // the latest year not "more than 50 years" ahead
        let year = latest - ((latest - digits) % 100 + 100) % 100
        parsed.tm_year = Int32(year - 1900)
        return timegm(&parsed)
    }
}

extension String {
    var trimmingASCIISpaces: String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }),
            let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}

// SPDX-License-Identifier: Apache-2.0
import CProxy
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Which proxy a request goes through, as the desktop has it.
///
/// The environment's `http_proxy`, `https_proxy`, `all_proxy` (and `no_proxy`) win: libcurl reads
/// them itself, so with any of them set this answers nil and leaves it to libcurl. Without them
/// (a systemd user service does not inherit a shell's variables), libproxy is asked for each URL:
/// it reads the desktop's settings (GNOME's, through its gsettings module when installed; KDE's;
/// /etc/sysconfig/proxy) and PAC/WPAD where its plugins are installed. Its factory is made on the
/// first request that needs it and kept for the process's life (it caches what it read).
final class ProxySettings: Sendable {
    static let shared = ProxySettings()

    /// The variables libcurl reads itself (either case, except HTTP_PROXY, which libcurl ignores
    /// as a CGI hazard).
    static let environmentNames = ["http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]

    private let factory = Mutex<OpaquePointer?>(nil)
    private let madeFactory = Atomic<Bool>(false)

    /// The proxy for `url` as libcurl's CURLOPT_PROXY takes it ("" for none), or nil to leave it
    /// to libcurl (the environment names one, or libproxy has no answer).
    func proxy(for url: String) -> String? {
        if Self.environmentNames.contains(where: { getenv($0).map { $0.pointee != 0 } ?? false }) { return nil }
        return desktopProxy(for: url)
    }

    /// libproxy's first usable answer for `url`: "" for a direct connection, or a proxy URL libcurl
    /// understands (http, https, socks4, socks4a, socks5, socks5h); nil if libproxy cannot be used.
    func desktopProxy(for url: String) -> String? {
        factory.withLock { factory -> String? in
            if factory == nil, !madeFactory.load(ordering: .relaxed) {
                madeFactory.store(true, ordering: .relaxed)
                factory = px_proxy_factory_new()
            }
            guard let factory, let answers = px_proxy_factory_get_proxies(factory, url) else { return nil }
            defer { px_proxy_factory_free_proxies(answers) }
            var index = 0
            while let answer = answers[index] {
                index += 1
                if let usable = Self.curlProxy(String(cString: answer)) { return usable }
            }
            return nil
        }
    }

    /// libproxy's "direct://" as "", a scheme libcurl speaks as it is, anything else (a PAC the
    /// plugins could not run) nil.
    static func curlProxy(_ answer: String) -> String? {
        if answer == "direct://" { return "" }
        let schemes = ["http://", "https://", "socks://", "socks4://", "socks4a://", "socks5://", "socks5h://"]
        guard schemes.contains(where: { answer.hasPrefix($0) }) else { return nil }
        return answer.hasPrefix("socks://") ? "socks5://" + answer.dropFirst("socks://".count) : answer
    }
}

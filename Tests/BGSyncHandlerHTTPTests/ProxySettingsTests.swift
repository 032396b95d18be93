// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import BGSyncHandlerHTTP

/// libproxy's answers as libcurl's CURLOPT_PROXY takes them.
@Suite struct ProxySettingsTests {
    @Test func libproxyAnswersBecomeCurlProxies() {
        #expect(ProxySettings.curlProxy("direct://") == "")
        #expect(ProxySettings.curlProxy("http://proxy.example:3128") == "http://proxy.example:3128")
        #expect(ProxySettings.curlProxy("socks5://127.0.0.1:1080") == "socks5://127.0.0.1:1080")
        #expect(ProxySettings.curlProxy("socks://127.0.0.1:1080") == "socks5://127.0.0.1:1080")
        // A PAC libproxy could not run, or a scheme libcurl does not speak: the next answer, or none.
        #expect(ProxySettings.curlProxy("pac+http://wpad/wpad.dat") == nil)
        #expect(ProxySettings.curlProxy("ftp://proxy.example") == nil)
    }
}

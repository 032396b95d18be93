// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import BGSyncNetwork

/// Reading the kernel's routing tables as /proc prints them.
struct DefaultRouteTests {
    static let ipv4Header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"

    @Test func ipv4DefaultRouteCounts() {
        let table =
            Self.ipv4Header
            + "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
            + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        #expect(DefaultRoute.inIPv4Table(table))
    }

    @Test func ipv4WithoutDefaultRouteIsOffline() {
        let table = Self.ipv4Header + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        #expect(!DefaultRoute.inIPv4Table(table))
        #expect(!DefaultRoute.inIPv4Table(""))
    }

    @Test func ipv6DefaultRouteCounts() {
        let table = """
            fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth0

            """
        #expect(DefaultRoute.inIPv6Table(table))
    }

    @Test func ipv6UnreachableOrLoopbackDefaultIsNotARoute() {
        // The kernel's catch-all "unreachable default" sits on lo with RTF_REJECT.
        let table = """
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
            fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0

            """
        #expect(!DefaultRoute.inIPv6Table(table))
    }
}

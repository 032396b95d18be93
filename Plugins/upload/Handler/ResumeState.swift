// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit

#if canImport(Glibc)
import Glibc
#endif

/// The resumable upload protocols of the option `resumable`.
enum ResumableProtocol: String {
    /// tus 1.0.0: creation (POST, Upload-Length → 201 Location), HEAD for Upload-Offset, PATCH.
    case tus
    /// draft-ietf-httpbis-resumable-upload: one POST with the whole body, whose 104 names the
    /// upload resource; after a cut, HEAD it for Upload-Offset and PATCH the rest.
    case ietf
}

/// Which file a resume is for: a file replaced since (another inode, size or mtime) is another
/// file and starts over.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modifiedSeconds: Int64
    var modifiedNanoseconds: Int64

    init(device: UInt64, inode: UInt64, size: Int64, modifiedSeconds: Int64, modifiedNanoseconds: Int64) {
        self.device = device
        self.inode = inode
        self.size = size
        self.modifiedSeconds = modifiedSeconds
        self.modifiedNanoseconds = modifiedNanoseconds
    }

    /// Of an open file, from fstat (the file being sent, not the name's entry).
    init(_ info: stat) {
        self.init(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedSeconds: Int64(info.st_mtim.tv_sec), modifiedNanoseconds: Int64(info.st_mtim.tv_nsec))
    }
}

/// What a resume keeps about one file's upload, in the handler's state directory (never the
/// app's), so it survives a cut link, a killed worker, an agent restart and a reboot.
struct ResumeRecord: Equatable {
    static let version = "1"

    var app: String
    var tag: String
    var file: FileIdentity
    var resumable: ResumableProtocol
    /// The creation endpoint (the option `url`) the upload was created at.
    var endpoint: String
    /// The upload resource (tus: the creation's Location; ietf: the 104's).
    var location: String
    /// The most bytes ever put on the wire for this resource (an upper bound, written before a
    /// request starts): a server offset above it is one the client never sent.
    var sent: Int64
    /// The highest offset the server ever confirmed: an attempt that raises it moved forward.
    var confirmed: Int64
    /// The furthest byte ever put on the wire (a cut request's offset plus what libcurl sent of its
    /// body). A cut is often known before the server has stored what it got (HEAD still answers
    /// the old offset): an attempt that pushes this forward by `ResumableUpload.minimumStep` moved
    /// forward too. Still bounded: it only grows, up to the file's size.
    var reached: Int64 = 0

    /// The text kept on disk: one `key=value` a line. The strings are hex-encoded UTF-8: a tag
    /// (the app's) may hold a newline, and must not be able to write a line of its own.
    var text: String {
        [
            "version=\(Self.version)", "app=\(Self.hex(app))", "tag=\(Self.hex(tag))", "device=\(file.device)",
            "inode=\(file.inode)", "size=\(file.size)", "mtime=\(file.modifiedSeconds).\(file.modifiedNanoseconds)",
            "protocol=\(resumable.rawValue)", "endpoint=\(Self.hex(endpoint))", "location=\(Self.hex(location))",
            "sent=\(sent)", "confirmed=\(confirmed)", "reached=\(reached)",
        ].joined(separator: "\n") + "\n"
    }

    static func hex(_ text: String) -> String {
        text.utf8.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
    }

    static func unhex(_ text: String) -> String? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
                return nil
            }
            bytes.append(byte)
            index += 2
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Reads `text`; nil for anything but a whole record of this version.
    init?(text: String) {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { return nil }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard fields["version"] == Self.version, let app = fields["app"].flatMap(Self.unhex),
            let tag = fields["tag"].flatMap(Self.unhex),
            let device = fields["device"].flatMap({ UInt64($0) }), let inode = fields["inode"].flatMap({ UInt64($0) }),
            let size = fields["size"].flatMap({ Int64($0) }), let mtime = fields["mtime"],
            let resumable = fields["protocol"].flatMap({ ResumableProtocol(rawValue: $0) }),
            let endpoint = fields["endpoint"].flatMap(Self.unhex),
            let location = fields["location"].flatMap(Self.unhex),
            !location.isEmpty,
            let sent = fields["sent"].flatMap({ Int64($0) }),
            let confirmed = fields["confirmed"].flatMap({ Int64($0) }),
            let reached = fields["reached"].flatMap({ Int64($0) })
        else { return nil }
        let parts = mtime.split(separator: ".")
        guard parts.count == 2, let seconds = Int64(parts[0]), let nanoseconds = Int64(parts[1]) else { return nil }
        self.init(
            app: app, tag: tag,
            file: FileIdentity(
                device: device, inode: inode, size: size, modifiedSeconds: seconds, modifiedNanoseconds: nanoseconds),
            resumable: resumable, endpoint: endpoint, location: location, sent: sent, confirmed: confirmed)
        self.reached = reached
    }

    init(
        app: String, tag: String, file: FileIdentity, resumable: ResumableProtocol, endpoint: String,
        location: String, sent: Int64, confirmed: Int64
    ) {
        self.app = app
        self.tag = tag
        self.file = file
        self.resumable = resumable
        self.endpoint = endpoint
        self.location = location
        self.sent = sent
        self.confirmed = confirmed
    }
}

/// The records of one registration's uploads, one small file each in the handler's state
/// directory. A record's name is the SHA-256 of the registration (app id, tag) and the file's
/// identity, so nothing an app names chooses a path; the record repeats all of them and a
/// record that does not match what it is looked up for counts as none.
struct ResumeStore {
    /// Records untouched this long are of files long gone (replaced, or taken back by the app).
    static let forgetAfter: Double = 30 * 24 * 3600

    let directory: StateDirectory
    let app: String
    let tag: String

    func name(_ file: FileIdentity, _ resumable: ResumableProtocol, endpoint: String) -> String {
        let key =
            "\(app)\0\(tag)\0\(file.device)\0\(file.inode)\0\(file.size)\0\(file.modifiedSeconds)\0"
            + "\(file.modifiedNanoseconds)\0\(resumable.rawValue)\0\(endpoint)"
        return "upload-" + SHA256.hex(of: Array(key.utf8))
    }

    func load(_ file: FileIdentity, _ resumable: ResumableProtocol, endpoint: String) -> ResumeRecord? {
        let name = name(file, resumable, endpoint: endpoint)
        guard let bytes = directory.read(name),
            let record = ResumeRecord(text: String(decoding: bytes, as: UTF8.self)),
            record.app == app, record.tag == tag, record.file == file, record.resumable == resumable,
            record.endpoint == endpoint
        else { return nil }
        return record
    }

    func save(_ record: ResumeRecord) throws(FileError) {
        try directory.write(name(record.file, record.resumable, endpoint: record.endpoint), Array(record.text.utf8))
    }

    func remove(_ record: ResumeRecord) {
        directory.remove(name(record.file, record.resumable, endpoint: record.endpoint))
    }

    /// Removes records (of every registration) not written for `forgetAfter`.
    func forgetOld(now: Double) {
        let copy = dup(directory.fd)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return
        }
        defer { closedir(stream) }
        var old: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix("upload-") || name.hasPrefix(".upload-") else { continue }
            var info = stat()
            guard fstatat(directory.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if Double(info.st_mtim.tv_sec) < now - Self.forgetAfter { old.append(name) }
        }
        for name in old { directory.remove(name) }
    }
}

import Foundation
import Testing

/// How `ReadmeTour` reads the tour out of README.md (no server needed); the tour itself runs in
/// `DevModeTests.theReadmeTourRunsAsWritten`.
struct ReadmeTourTests {
    static let sample = """
        # Title
        ## A short tour
        ```sh
        mayfly read database/creds/dev-readonly   # a comment with a "quote
        # a comment line

        mayfly write a/b x="# not a comment" \\
            y=2                                   # continued
                                                  # and a comment-only line
        sudo -u orders curl http://x               # as another user (not run by the tour test: needs sudo)
        mayfly lease renew <lease_id>
        ```
        ```python
        print("not shell")
        ```
        ### A subsection of the tour
        ```sh
        mayfly status
        ```
        ## Elsewhere
        ```sh
        mayfly operator seal
        ```
        """

    @Test func commandsComeFromTheTourSectionsOnly() throws {
        let commands = try ReadmeTour.commands(markdown: Self.sample, sections: ["A short tour"])
        #expect(commands.map(\.text) == [
            "mayfly read database/creds/dev-readonly",
            "mayfly write a/b x=\"# not a comment\" y=2",
            "sudo -u orders curl http://x",
            "mayfly lease renew <lease_id>",
            "mayfly status",
        ])
        #expect(commands.map(\.line) == [4, 7, 10, 11, 18])
        #expect(commands.map { $0.skipReason != nil } == [false, false, true, false, false])
        #expect(commands[3].placeholders == ["lease_id"])
        #expect(throws: ReadmeTourError.self) { try ReadmeTour.commands(markdown: Self.sample, sections: ["Missing"]) }
    }

    @Test func placeholdersAreFilledFromEarlierOutput() throws {
        let output = """
            Key                Value
            ---                -----
            lease_id           database/creds/dev-readonly/AbC
            connection_url     postgresql://v-dev-readonly-x@127.0.0.1:5432/postgres?sslmode=disable
            Unseal Progress    0
            """
        let values = ReadmeTour.tableValues(in: output)
        #expect(values["lease_id"] == "database/creds/dev-readonly/AbC")
        #expect(values["unseal_progress"] == "0")
        #expect(try ReadmeTour.substitute("psql '<connection_url>' <in.sql", values: values)
                == "psql 'postgresql://v-dev-readonly-x@127.0.0.1:5432/postgres?sslmode=disable' <in.sql")
        #expect(throws: ReadmeTourError.self) { try ReadmeTour.substitute("mayfly lease renew <id>", values: values) }

        let banner = ReadmeTour.bannerValues(in: """
                export PATH="/opt/mayfly/bin:$PATH"
                export MAYFLY_TOKEN='mf.x'
            Unseal Key: 00ff
            Its store and audit log live in /tmp/x and are deleted on exit (Ctrl-C).
            """)
        #expect(banner.values == ["unseal_key": "00ff"])
        #expect(banner.exports == ["PATH": "export PATH=\"/opt/mayfly/bin:$PATH\"", "MAYFLY_TOKEN": "export MAYFLY_TOKEN='mf.x'"])
    }

    /// README.md's tour: what the dev banner must print, and placeholders the tour fills.
    @Test func theReadmeTourIsRunnable() throws {
        let commands = try ReadmeTour.commands()
        #expect(commands.count >= 20, "\(commands)")
        #expect(commands.prefix { $0.exportedName != nil }.compactMap(\.exportedName) == ["PATH", "MAYFLY_ADDR", "MAYFLY_TOKEN"],
                "the tour starts with the lines to paste")
        #expect(commands.first { $0.exportedName == nil }?.text.hasPrefix("mayfly ") == true)
    }
}

import Foundation
import Synchronization

/// Sends `count` GETs of one path (a credential, a KV secret, health) from `clients`
/// concurrent keep-alive connections (one thread each) and records every request's latency.
struct RequestLoad {
    struct Result {
        var count: Int
        var seconds: Double
        var latencies: [Double]
        /// `connection_url` and password of the first credentials, when asked to keep them.
        var kept: [(url: String, password: String)] = []
        var perSecond: Double { Double(count) / seconds }

        /// Latency percentile in milliseconds.
        func percentile(_ p: Double) -> Double {
            let sorted = latencies.sorted()
            guard !sorted.isEmpty else { return 0 }
            let index = min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1)
            return sorted[max(0, index)] * 1000
        }
    }

    var socketPath: String
    var token: String
    var path: String

    /// Sends `count` requests; keeps the login details of up to `keep` credentials.
    func run(count: Int, clients: Int, keep: Int = 0) throws -> Result {
        let next = Atomic<Int>(0)
        let results = Mutex<(latencies: [Double], failure: String?)>(([], nil))
        let kept = Mutex<[(url: String, password: String)]>([])
        let clientsList = try (0..<clients).map { _ in try UnixHTTPClient(socketPath: socketPath) }
        let start = DispatchTime.now().uptimeNanoseconds
        // One thread per client (not concurrentPerform, which caps concurrency at the core count).
        let finished = DispatchGroup()
        for index in 0..<clients {
            finished.enter()
            let thread = Thread {
                defer { finished.leave() }
                let client = clientsList[index]
                var mine: [Double] = []
                mine.reserveCapacity(count / clients + 1)
                while next.add(1, ordering: .relaxed).oldValue < count {
                    let begin = DispatchTime.now().uptimeNanoseconds
                    do {
                        let response = try client.request("GET", path, token: token)
                        guard response.status == 200 else {
                            throw UnixHTTPClient.Failure(
                                description: "HTTP \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
                        }
                        if keep > 0, kept.withLock({ $0.count < keep }),
                            let object = try JSONSerialization.jsonObject(with: response.body) as? [String: Any],
                            let data = object["data"] as? [String: Any], let url = data["connection_url"] as? String,
                            let password = data["password"] as? String
                        {
                            kept.withLock { if $0.count < keep { $0.append((url, password)) } }
                        }
                    } catch {
                        results.withLock { if $0.failure == nil { $0.failure = "\(error)" } }
                        break
                    }
                    mine.append(Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9)
                }
                results.withLock { $0.latencies += mine }
            }
            thread.start()
        }
        finished.wait()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let (latencies, failure) = results.withLock { ($0.latencies, $0.failure) }
        if let failure { throw UnixHTTPClient.Failure(description: "GET \(path) failed: \(failure)") }
        return Result(count: latencies.count, seconds: seconds, latencies: latencies, kept: kept.withLock { $0 })
    }
}

/// Policies compiled into the binary from this folder (only `default.hcl`; `examples/` is
/// documentation), so the server needs no file to have a default policy.
public enum BuiltinPolicies {
    /// The text of `policies/default.hcl`.
    public static let defaultText = String(decoding: PackageResources.default_hcl, as: UTF8.self)
}

//! MCP protocol constants of the session era (2025-03-26 to 2025-11-25) and version
//! negotiation. One place, so adding a revision is one edit.

/// Protocol versions the gateway speaks on its front side, newest first.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// The newest version; offered to upstreams and to clients asking for an unknown one.
pub const LATEST_VERSION: &str = SUPPORTED_VERSIONS[0];

/// Session header (case-insensitive on the wire).
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Protocol version header.
pub const VERSION_HEADER: &str = "mcp-protocol-version";

/// The version to answer a client's `initialize` with: its own if supported, else the latest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED_VERSIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(LATEST_VERSION)
}

/// Whether a version string is one the gateway serves.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_keeps_a_supported_version_and_upgrades_unknown_ones() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2024-11-05")), LATEST_VERSION);
        assert_eq!(negotiate(Some("garbage")), LATEST_VERSION);
        assert_eq!(negotiate(None), LATEST_VERSION);
    }
}

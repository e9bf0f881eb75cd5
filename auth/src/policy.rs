//! What one gateway accepts: credential kinds, providers, its own resource identifier (for
//! tokens Sluice issued) and its tool rules. Built once per gateway from the config.

use std::collections::HashSet;

use crate::rules::Rules;

/// One gateway's authentication policy.
#[derive(Debug, Clone)]
pub struct GatewayPolicy {
    /// The gateway name.
    pub gateway: String,
    /// Accepts `[[auth.tokens]]`.
    pub tokens: bool,
    /// Indexes of accepted providers.
    pub providers: HashSet<usize>,
    /// Issuers of accepted providers, for the protected-resource metadata.
    pub authorization_servers: Vec<String>,
    /// Accepts tokens Sluice issued for `resource`.
    pub id_jag: bool,
    /// `{public_url}/mcp/{gateway}` when `auth.public_url` is set.
    pub resource: Option<String>,
    /// Scopes to advertise.
    pub scopes: Vec<String>,
    /// Tool rules.
    pub rules: Rules,
}

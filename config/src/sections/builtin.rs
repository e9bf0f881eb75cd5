//! `builtin_tools = true` on a gateway: the gateway also shows control's `sluice__*` tools
//! (list and inspect the registry, install, uninstall, assign). Control serves them as an MCP
//! server at `{control.url}/v1/mcp`, and the loader adds that server here, named
//! [`BUILTIN_SERVER`], with the proxy's own control token as its credential.
//!
//! Why an ordinary upstream rather than tools answered inside the proxy: a built-in tool is
//! then listed, ruled (`[[gateways.auth.rules]]`), limited, counted and traced exactly like any
//! other tool, so RBAC over the registry needs no second mechanism; and the registry's writes
//! stay in the one process that owns the store. The client's own token never goes there: the
//! proxy presents its control token, and says which gateway and which caller it acts for.

use toml::de::DeTable;

use crate::reader::Reader;
use crate::schema::{CredentialConfig, CredentialKind, ResourceTools};
use crate::{ControlConfig, GatewayConfig, SecretString, ServerConfig, ServerName};

/// The built-in server's name, so its tools are `sluice__{tool}`.
pub const BUILTIN_SERVER: &str = "sluice";
/// Requests a replica sends to control's built-in tools at once; control is one process
/// shared by every replica.
const MAX_CONCURRENT: usize = 64;

/// A gateway's `builtin_tools`, checked against what it needs: `[control]`, and no declared
/// server already named [`BUILTIN_SERVER`].
pub(super) fn gateway_flag(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    declared: &[String],
    has_control: bool,
) -> bool {
    let Some(on) = r.boolean(t, "builtin_tools", "gateways") else {
        return false;
    };
    if !on {
        return false;
    }
    let span = t.get("builtin_tools").map(|v| v.span()).unwrap_or_default();
    if !has_control {
        r.problem(
            span,
            "gateways.builtin_tools = true needs [control]: the built-in sluice__* tools are served by the control process",
        );
        return false;
    }
    if declared.iter().any(|d| d == BUILTIN_SERVER) {
        r.problem(
            span,
            format!(
                "gateways.builtin_tools = true needs the server name {BUILTIN_SERVER:?}, which a [[servers]] entry already has; rename that server"
            ),
        );
        return false;
    }
    true
}

/// Adds the built-in server when a gateway shows it, and puts it in those gateways' servers.
pub(super) fn add_server(
    control: &ControlConfig,
    servers: &mut Vec<ServerConfig>,
    gateways: &mut [GatewayConfig],
) {
    if !gateways.iter().any(|g| g.builtin_tools) {
        return;
    }
    let name = ServerName::new(BUILTIN_SERVER).expect("the built-in server's name is valid");
    let mut url = control.url.clone();
    url.set_path(&format!(
        "{}/v1/mcp",
        control.url.path().trim_end_matches('/')
    ));
    servers.push(ServerConfig {
        name: name.clone(),
        url,
        timeout: ServerConfig::DEFAULT_TIMEOUT,
        connect_timeout: ServerConfig::DEFAULT_CONNECT_TIMEOUT,
        read_timeout: ServerConfig::DEFAULT_TIMEOUT,
        credential: Some(CredentialConfig {
            header: CredentialConfig::DEFAULT_HEADER.to_owned(),
            kind: CredentialKind::Static {
                value: SecretString::new(format!("Bearer {}", control.token.expose())),
            },
            expiry_margin: CredentialConfig::DEFAULT_EXPIRY_MARGIN,
            timeout: CredentialConfig::DEFAULT_TIMEOUT,
            failure_ttl: CredentialConfig::DEFAULT_FAILURE_TTL,
            cache_capacity: CredentialConfig::DEFAULT_CACHE_CAPACITY,
        }),
        catalog_credential: None,
        max_concurrent: MAX_CONCURRENT,
        eject_after: ServerConfig::DEFAULT_EJECT_AFTER,
        eject_for: ServerConfig::DEFAULT_EJECT_FOR,
        resource_tools: ResourceTools::Off,
        builtin: true,
    });
    for g in gateways.iter_mut().filter(|g| g.builtin_tools) {
        g.servers.push(name.clone());
    }
}

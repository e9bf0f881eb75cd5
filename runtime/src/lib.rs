//! `sluice-runtime`: where self-hosted MCP servers run.
//!
//! Most MCP servers speak only stdio. The [`bridge`] serves one such server as Streamable HTTP
//! (`sluice bridge -- CMD ARGS…`, also the entrypoint wrapper in containers), so the gateway
//! reaches every self-hosted server the same way: over HTTP. Process groups, bounded line
//! reading and restart backoff are shared by the bridge and the runtime backends.

#![warn(missing_docs)]

mod backoff;
pub mod bridge;
mod lines;
pub mod process_group;

pub use backoff::Backoff;
pub use bridge::{Bridge, BridgeConfig, BridgeError, BridgeStatus};

//! Synthesised read-resource tools (`servers[].resource_tools`) in the proxy.
//!
//! When a server qualifies, each resource it lists becomes a tool of that server, added to
//! its fetched catalog once per fetch ([`super::ServerCatalog::synthesise_resource_tools`]),
//! so from there on they are ordinary tools: prefixed, listed, assignable, ruled, limited,
//! searchable in lazy mode; a call is turned into a `resources/read` of the resource's URI
//! ([`crate::gateway::resource_call`]).
//!
//! The naming (slug, suffixes for clashes, the bound) is [`sluice_config::resource_tools`],
//! shared with the control plane's tool discovery so that both show the same names; this
//! module re-exports it (its tests, which pin the names, are there).

pub use sluice_config::resource_tools::{
    MAX_RESOURCE_TOOLS, MAX_SLUG_LEN, READ_PREFIX, Synthesised, qualifies, slug, synthesise,
};

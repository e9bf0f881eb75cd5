//! The Sluice data plane: an MCP gateway on Pingora.
//!
//! A request to `/mcp/{gateway}` is inspected without building a JSON tree
//! ([`jsonrpc`]), answered by the gateway when it can ([`gateway`]), and otherwise routed by
//! tool prefix to an upstream ([`upstream`]) whose catalog the gateway keeps fresh
//! ([`catalog`]). Sessions live in sealed tokens ([`session_token`], [`session`]) so replicas
//! share nothing.
#![warn(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod auth_keys;
pub mod breaker;
pub mod catalog;
pub mod error;
pub mod gateway;
pub mod host_check;
pub mod inflight;
pub mod jsonrpc;
pub mod metrics;
pub mod modern;
pub mod name_locator;
pub mod overload;
pub mod policy;
pub mod protocol;
pub mod rate_limit;
pub mod relay;
pub mod reload;
pub mod reply;
pub mod server;
pub mod session;
pub mod session_token;
pub mod shutdown;
pub mod sse;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod upstream;

pub use server::{ProxyServer, StartError};

//! Starts control in-process on a free loopback port over a fresh sled directory.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::{Value, json};
use sluice_control::client::Client;
use sluice_control::config::{ControlConfig, Token};
use sluice_control::{KeyRing, Running};

pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
pub const PROXY_TOKEN: &str = "proxy-token-0123456789";
/// A proxy token scoped to the gateway `team`.
pub const SCOPED_TOKEN: &str = "scoped-proxy-token-0123456789";
pub const SECRET: &str = "sk-live-do-not-leak-8f3a";

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("sluice-ctl-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Control {
    pub running: Running,
    pub dir: TempDir,
    pub admin: Client,
    pub proxy: Client,
    /// With [`SCOPED_TOKEN`].
    pub scoped: Client,
    pub url: String,
}

pub fn token(name: &str, token: &str) -> Token {
    Token {
        name: name.into(),
        token: sluice_config::SecretString::new(token.into()),
        gateways: None,
    }
}

pub async fn start(name: &str) -> Control {
    let dir = TempDir::new(name);
    let config = ControlConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.0.clone(),
        key_env: String::new(),
        old_keys_env: String::new(),
        admin_tokens: vec![token("ops", ADMIN_TOKEN)],
        proxy_tokens: vec![
            token("replicas", PROXY_TOKEN),
            Token {
                gateways: Some(vec!["team".into()]),
                ..token("team-replicas", SCOPED_TOKEN)
            },
        ],
        runtime: Default::default(),
        discovery: Default::default(),
    };
    let running = sluice_control::start(&config, KeyRing::new([5; 32], &[]))
        .await
        .expect("control starts");
    let url = format!("http://{}", running.addr);
    Control {
        admin: Client::new(&url, Some(ADMIN_TOKEN.into())).unwrap(),
        proxy: Client::new(&url, Some(PROXY_TOKEN.into())).unwrap(),
        scoped: Client::new(&url, Some(SCOPED_TOKEN.into())).unwrap(),
        url,
        running,
        dir,
    }
}

pub fn template() -> Value {
    json!({
        "name": "github",
        "description": "GitHub's MCP server",
        "transport": "http",
        "url": "{base}/mcp",
        "fields": [
            {"name": "base", "type": "url", "default": "http://127.0.0.1:9"},
            {"name": "api_key", "secret": true}
        ],
        "credential": {"type": "static", "value": "Bearer {api_key}"}
    })
}

pub fn installation(name: &str) -> Value {
    json!({"name": name, "template": "github", "values": {"api_key": SECRET}})
}

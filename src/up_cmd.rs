//! `sluice up`: the embedded default, the whole system in one process. It runs the control
//! plane (its registry in sled under `DATA/registry`, its admin API on `--control-listen`),
//! whose orchestrator runs the bundled example server as a local stdio installation behind
//! the bridge (`sluice example-server --stdio`), and a proxy that follows the registry like
//! any replica, serving the `default` gateway.
//!
//! The first start seeds the registry (template `example`, installation `example`, gateway
//! `default` showing it) and writes the secrets it needs under `DATA` with mode 0600: the
//! control key that seals stored secrets, the admin token for `sluice ctl`, and the session
//! secret, so sessions and registry survive a restart. Later starts keep whatever the
//! registry became. Stopping (SIGTERM drains, Ctrl-C at once) stops the control plane too,
//! and with it the servers it runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use sluice_control::config::ControlConfig;
use sluice_control::store::Mode;

/// Where `sluice up` keeps its state by default.
pub const DEFAULT_DATA: &str = "./data/up";

/// How long `up` waits for the example installation to answer before it serves anyway.
const READY_WAIT: Duration = Duration::from_secs(30);

/// What `sluice up` listens on and keeps.
pub struct Up {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub control_listen: SocketAddr,
    pub data: PathBuf,
}

pub fn run(up: Up) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&up.data).with_context(|| format!("creating {}", up.data.display()))?;
    restrict(&up.data, 0o700)?;
    let key = secret_file(&up.data.join("control.key"))?;
    let admin_token = secret_file(&up.data.join("admin.token"))?;
    let session_secret = secret_file(&up.data.join("session.secret"))?;
    let proxy_token = hex(&rand_bytes());

    // Written as a control config file would be, so every other key keeps its default.
    let registry = up.data.join("registry").display().to_string();
    let text = format!(
        "listen = \"{}\"\ndata_dir = \"{}\"\n\n[[admin_tokens]]\nname = \"up\"\ntoken = \"{admin_token}\"\n\n[[proxy_tokens]]\nname = \"proxy\"\ntoken = \"{proxy_token}\"\n",
        up.control_listen,
        registry.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let control = ControlConfig::parse(&text, "<sluice up>", &|_| None)
        .map_err(|e| anyhow::anyhow!("the embedded control config is invalid: {e}"))?;
    let key_file = up.data.join("control.key");
    let key_bytes = from_hex(&key).with_context(|| {
        format!(
            "{} is not 64 hex characters; it seals the registry's secrets, so it is not replaced on its own",
            key_file.display()
        )
    })?;
    let keys = sluice_control::KeyRing::new(key_bytes, &[]);
    let embedded = EmbeddedControl::start(control, keys)?;

    let proxy_file = up.data.join("proxy.toml");
    std::fs::write(
        &proxy_file,
        format!(
            "# Written by `sluice up` at every start.\n[proxy]\nlisten = \"{}\"\nadmin_listen = \"{}\"\ngrace_period = \"2s\"\n\n[sessions]\nsecret = \"{session_secret}\"\n\n[control]\nurl = \"http://{}\"\ntoken = \"{proxy_token}\"\nsnapshot_file = \"{}\"\n",
            up.listen,
            up.admin_listen,
            embedded.addr,
            up.data.join("proxy.snapshot").display()
        ),
    )
    .with_context(|| format!("writing {}", proxy_file.display()))?;
    restrict(&proxy_file, 0o600)?;
    let config = sluice_config::load_file(&proxy_file)
        .map_err(|e| anyhow::anyhow!("the generated proxy config is invalid:\n{e}"))?;
    let start = sluice_proxy::sync::start(&proxy_file, config);
    let mut server = sluice_proxy::ProxyServer::build_started(start, Some(proxy_file.clone()))
        .context("starting the proxy")?;
    let (control_addr, example) = (embedded.addr, embedded.example_url.clone());
    server.on_exit(embedded.stopper());

    let url = format!("http://{}/mcp/default", up.listen);
    let banner = format!(
        "sluice is up.\n  MCP endpoint:   {url}   (point your MCP client here)\n  example server: {}\n  health:         http://{admin}/healthz  http://{admin}/readyz\n  registry:       http://{control}  (sluice ctl --url http://{control} --token-file {token} installations list)\n  state:          {data}\nPress Ctrl-C to stop.\n",
        example
            .as_deref()
            .unwrap_or("(starting; see sluice ctl installations list)"),
        admin = up.admin_listen,
        control = control_addr,
        token = up.data.join("admin.token").display(),
        data = up.data.display(),
    );
    // One write, errors ignored: a closed stdout must not stop the gateway.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
    server.run()
}

/// The control plane on its own thread and Tokio runtime (pingora runs its own).
struct EmbeddedControl {
    addr: SocketAddr,
    /// Where the orchestrator runs the example server, once it answered.
    example_url: Option<String>,
    stop: tokio::sync::oneshot::Sender<()>,
    stopped: std::sync::mpsc::Receiver<()>,
}

impl EmbeddedControl {
    fn start(config: ControlConfig, keys: sluice_control::KeyRing) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (stopped_tx, stopped) = std::sync::mpsc::channel();
        let data_dir = config.data_dir.clone();
        std::thread::Builder::new()
            .name("sluice-control".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("control runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let running = match sluice_control::start(&config, keys).await {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow::anyhow!(e)));
                            return;
                        }
                    };
                    let seeded = seed(&running).await;
                    let example = match seeded {
                        Ok(()) => example_url(&running).await,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            let _ = running.stop().await;
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok((running.addr, example)));
                    let _ = stop_rx.await;
                    if let Err(e) = running.stop().await {
                        tracing::error!(error = %e, "stopping control");
                    }
                    let _ = stopped_tx.send(());
                });
            })
            .context("starting the control thread")?;
        let (addr, example_url) = ready_rx
            .recv()
            .context("the control thread ended")?
            .with_context(|| format!("starting control (registry {})", data_dir.display()))?;
        Ok(EmbeddedControl {
            addr,
            example_url,
            stop,
            stopped,
        })
    }

    /// What stops control (and the servers it runs) when the proxy has stopped.
    fn stopper(self) -> impl FnOnce() + Send + 'static {
        let EmbeddedControl { stop, stopped, .. } = self;
        move || {
            let _ = stop.send(());
            // Bounded: the runtime gives each server 5 s after SIGTERM.
            let _ = stopped.recv_timeout(Duration::from_secs(15));
        }
    }
}

/// Seeds an empty registry with the example: a stdio template running this binary's
/// `example-server --stdio`, its installation, and the `default` gateway.
async fn seed(running: &sluice_control::Running) -> anyhow::Result<()> {
    let store = running.store.clone();
    let exe = std::env::current_exe().context("finding the sluice binary")?;
    let version = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<u64>> {
        if !store.templates()?.is_empty() || !store.installations()?.is_empty() {
            return Ok(None);
        }
        let template = serde_json::from_value(json!({
            "name": "example",
            "description": "the bundled example MCP server (echo, add, time), over stdio",
            "transport": "stdio",
            "command": [exe.display().to_string(), "example-server", "--stdio"],
        }))?;
        store.put_template("sluice-up", template, Mode::Create)?;
        let installation =
            serde_json::from_value(json!({"name": "example", "template": "example"}))?;
        store.put_installation("sluice-up", installation, Mode::Create)?;
        let gateway = serde_json::from_value(json!({"name": "default", "servers": ["example"]}))?;
        let v = store.put_gateway("sluice-up", gateway, Mode::Create)?;
        store.flush_through(v)?;
        Ok(Some(v))
    })
    .await??;
    if let Some(v) = version {
        running.publish(v);
        tracing::info!("seeded the registry with the example server and the default gateway");
    }
    Ok(())
}

/// Waits (bounded) for the orchestrator to have the example installation running.
async fn example_url(running: &sluice_control::Running) -> Option<String> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    let mut changes = running.subscribe();
    loop {
        let store = running.store.clone();
        let state = tokio::task::spawn_blocking(move || store.run_state("example"))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        if let Some(s) = state.filter(|s| s.item.state == "running") {
            return s.item.url;
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            return None;
        }
    }
}

/// A secret kept in `path` (64 hex characters), made on first use with mode 0600.
fn secret_file(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() == 64 => Ok(text.trim().to_owned()),
        Ok(_) => anyhow::bail!(
            "{} is not 64 hex characters; remove it to have a new one made",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = hex(&rand_bytes());
            std::fs::write(path, format!("{value}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            restrict(path, 0o600)?;
            Ok(value)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {}", path.display()))
}

fn rand_bytes() -> [u8; 32] {
    rand::random()
}

/// 32 bytes from 64 hex characters.
fn from_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! Following the registry (`[control]`): the proxy long-polls control's
//! `GET /v1/snapshot?after=V&wait=S` with its proxy token, and every snapshot it receives goes
//! through the reloader ([`crate::reload::Reloader::apply_snapshot`]): the config file is
//! re-read, merged with the snapshot and validated as one config, and a valid result is swapped
//! in as a successor world in one pointer store, so no request sees half a snapshot. A snapshot
//! that makes the merged config invalid (a server name in both the file and the registry, say)
//! is refused with every error logged and counted, the running world is kept, and polling goes
//! on.
//!
//! Why a saved copy: a proxy must be able to start while control is down (control is one
//! process; proxies are many). Each applied snapshot is written to `control.snapshot_file`
//! atomically (temp file, fsync, rename; mode 0600), and at start, if control does not answer
//! within [`START_TIMEOUT`], the proxy starts from that copy and follows control once it
//! answers. Snapshots carry decrypted upstream credentials, so the copy is sealed with
//! XChaCha20-Poly1305 under a key derived by HKDF-SHA256 from `sessions.secret` with its own
//! `info` ([`FILE_KEY_INFO`]), never the session-token key itself.
//!
//! Why long-poll rather than push or a periodic fetch: control answers as soon as its version
//! differs from the one the proxy holds, so a change reaches a connected proxy in one round
//! trip, and an idle proxy costs one parked request per `poll_wait`. When control is
//! unreachable the proxy retries with capped exponential backoff and jitter, so replicas do not
//! reconnect in lockstep. Responses are bounded ([`MAX_SNAPSHOT_BYTES`]); the token is only
//! ever sent in the `Authorization` header and never logged.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use pingora::services::background::BackgroundService;
use rand::RngCore as _;
use sha2::Sha256;
use sluice_config::{Config, ControlConfig, Snapshot};

use crate::metrics::Metrics;
use crate::reload::{Reloader, load_merged};

/// How long a starting proxy waits for control before it starts from the saved snapshot.
pub const START_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest snapshot accepted from control or read from the saved file.
pub const MAX_SNAPSHOT_BYTES: usize = 32 << 20;
/// HKDF `info` of the saved-snapshot key: binds the key to this one use of `sessions.secret`.
pub const FILE_KEY_INFO: &[u8] = b"sluice/control-snapshot-file/v1";
/// First bytes of a saved snapshot; also the AEAD associated data.
const MAGIC: &[u8] = b"sluice-snapshot/v1\n";
const NONCE_LEN: usize = 24;
/// First retry delay after a failed poll; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Added to `poll_wait` to bound one whole long-poll request.
const REQUEST_SLACK: Duration = Duration::from_secs(15);

/// Why a snapshot could not be fetched, saved or read back. Never holds a secret: not the
/// token, not a credential, not a decrypted byte.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Control could not be reached, or the request failed or timed out.
    #[error("control unreachable: {0}")]
    Unreachable(String),
    /// Control answered with an unexpected status.
    #[error("control answered HTTP {status}{hint}")]
    Status {
        /// The status.
        status: u16,
        /// What it probably means.
        hint: &'static str,
    },
    /// The answer exceeded [`MAX_SNAPSHOT_BYTES`].
    #[error("the snapshot is larger than {MAX_SNAPSHOT_BYTES} bytes")]
    TooLarge,
    /// The answer was not a snapshot (only the position is reported, never content).
    #[error("the answer is not a registry snapshot (JSON error at line {line}, column {column})")]
    Malformed {
        /// Line of the JSON error.
        line: usize,
        /// Column of the JSON error.
        column: usize,
    },
    /// The saved file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The saved file is not a snapshot sealed with this `sessions.secret`.
    #[error(
        "{0}: cannot decrypt the saved snapshot (a different sessions.secret, or a damaged file)"
    )]
    Decrypt(PathBuf),
    /// The key could not be derived.
    #[error("sessions.secret cannot derive the snapshot file key")]
    Key,
}

fn malformed(e: &serde_json::Error) -> SyncError {
    SyncError::Malformed {
        line: e.line(),
        column: e.column(),
    }
}

/// The saved, encrypted copy of the last applied snapshot:
/// `MAGIC ‖ nonce(24) ‖ XChaCha20-Poly1305(JSON, aad = MAGIC)`.
pub struct SnapshotFile {
    path: PathBuf,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SnapshotFile {
    /// The file at `path`, sealed under a key derived from `secret` (`sessions.secret`).
    pub fn new(path: PathBuf, secret: &[u8]) -> Result<Self, SyncError> {
        let mut key = Key::default();
        Hkdf::<Sha256>::new(None, secret)
            .expand(FILE_KEY_INFO, &mut key)
            .map_err(|_| SyncError::Key)?;
        Ok(SnapshotFile {
            path,
            cipher: XChaCha20Poly1305::new(&key),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> SyncError {
        SyncError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Seals `snapshot` and replaces the file atomically: a temp file beside it (mode 0600),
    /// fsync, rename, fsync of the directory. A crash leaves the old file or the new one.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), SyncError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let plain = serde_json::to_vec(snapshot).map_err(|e| malformed(&e))?;
        let mut nonce = XNonce::default();
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: MAGIC,
                },
            )
            .map_err(|_| SyncError::Key)?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "snapshot".into());
        let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&nonce)?;
            f.write_all(&sealed)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(|e| self.io(e))
    }

    /// Reads and opens the saved snapshot; `Ok(None)` when there is no file.
    pub fn load(&self) -> Result<Option<Snapshot>, SyncError> {
        use std::io::Read as _;
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let mut raw = Vec::new();
        file.take(MAX_SNAPSHOT_BYTES as u64 + 1024)
            .read_to_end(&mut raw)
            .map_err(|e| self.io(e))?;
        if raw.len() > MAX_SNAPSHOT_BYTES + 512 {
            return Err(SyncError::TooLarge);
        }
        let body = raw
            .strip_prefix(MAGIC)
            .filter(|b| b.len() >= NONCE_LEN)
            .ok_or_else(|| SyncError::Decrypt(self.path.clone()))?;
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: MAGIC,
                },
            )
            .map_err(|_| SyncError::Decrypt(self.path.clone()))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| malformed(&e))
    }
}

/// A long-poll client of control's snapshot endpoint.
#[derive(Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    token: String,
    wait: Duration,
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl ControlClient {
    /// A client of the control at `control.url`.
    pub fn new(control: &ControlConfig) -> Result<Self, SyncError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(control.poll_wait + REQUEST_SLACK)
            .build()
            .map_err(|e| SyncError::Unreachable(e.to_string()))?;
        let mut endpoint = control.url.clone();
        let path = format!("{}/v1/snapshot", endpoint.path().trim_end_matches('/'));
        endpoint.set_path(&path);
        Ok(ControlClient {
            http,
            endpoint,
            token: control.token.expose().to_owned(),
            wait: control.poll_wait,
        })
    }

    /// One poll: the snapshot at once when control's version differs from `after` (or
    /// `after` is `None`), else when it changes within `wait`; `Ok(None)` when it did not.
    pub async fn fetch(
        &self,
        after: Option<u64>,
        wait: Duration,
    ) -> Result<Option<Snapshot>, SyncError> {
        let mut url = self.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(v) = after {
                q.append_pair("after", &v.to_string());
            }
            q.append_pair("wait", &wait.as_secs().to_string());
        }
        let mut resp = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| SyncError::Unreachable(e.without_url().to_string()))?;
        match resp.status().as_u16() {
            200 => {}
            304 => return Ok(None),
            status => {
                let hint = match status {
                    401 => " (control.token is not one of control's proxy_tokens)",
                    403 => " (control.token is not a proxy token)",
                    404 => " (control.url is not a control process)",
                    _ => "",
                };
                return Err(SyncError::Status { status, hint });
            }
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_SNAPSHOT_BYTES as u64)
        {
            return Err(SyncError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| SyncError::Unreachable(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_SNAPSHOT_BYTES {
                return Err(SyncError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| malformed(&e))
    }
}

/// What a proxy with `[control]` starts with: the file merged with control's snapshot when
/// control answers within [`START_TIMEOUT`], else with the saved snapshot, else the file
/// alone. Every fallback is logged with its reason.
pub struct Start {
    /// The config to build the first world from.
    pub config: Config,
    /// The snapshot merged into it.
    pub snapshot: Option<Snapshot>,
    /// Where applied snapshots are saved.
    pub file: Option<SnapshotFile>,
}

/// Builds the [`Start`] of the proxy whose file `path` loaded as `file_config`. Blocking (it
/// runs its own small runtime); call before the server is built.
pub fn start(path: &Path, file_config: Config) -> Start {
    let Some(control) = file_config.control.clone() else {
        return Start {
            config: file_config,
            snapshot: None,
            file: None,
        };
    };
    let file = match file_config
        .sessions
        .as_ref()
        .map(|s| SnapshotFile::new(control.snapshot_file.clone(), s.secret.expose().as_bytes()))
    {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            tracing::error!("{e}; snapshots will not be saved");
            None
        }
        None => None,
    };
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SyncError::Unreachable(e.to_string()))
        .and_then(|rt| {
            rt.block_on(async {
                let client = ControlClient::new(&control)?;
                match tokio::time::timeout(START_TIMEOUT, client.fetch(None, Duration::ZERO)).await
                {
                    Ok(r) => r,
                    Err(_) => Err(SyncError::Unreachable(format!(
                        "no answer within {START_TIMEOUT:?}"
                    ))),
                }
            })
        });
    let mut candidates: Vec<(Snapshot, &str)> = Vec::new();
    match fetched {
        Ok(Some(s)) => candidates.push((s, "control")),
        Ok(None) => {}
        Err(e) => tracing::warn!(url = %control.url, "starting without control: {e}"),
    }
    if candidates.is_empty()
        && let Some(f) = &file
    {
        match f.load() {
            Ok(Some(s)) => candidates.push((s, "the saved snapshot")),
            Ok(None) => tracing::warn!(
                file = %f.path().display(),
                "no saved registry snapshot; starting with the config file alone until control answers"
            ),
            Err(e) => {
                tracing::error!("{e}; starting with the config file alone until control answers")
            }
        }
    }
    for (snapshot, from) in candidates {
        match load_merged(path, Some(&snapshot)) {
            Ok(config) => {
                tracing::info!(
                    version = snapshot.version,
                    servers = snapshot.servers.len(),
                    gateways = snapshot.gateways.len(),
                    "starting from registry snapshot v{} ({from})",
                    snapshot.version
                );
                if from == "control"
                    && let Some(f) = &file
                    && let Err(e) = f.save(&snapshot)
                {
                    tracing::error!("cannot save the registry snapshot: {e}");
                }
                return Start {
                    config,
                    snapshot: Some(snapshot),
                    file,
                };
            }
            Err(errors) => tracing::error!(
                "registry snapshot v{} ({from}) refused; starting with the config file alone:\n{errors}",
                snapshot.version
            ),
        }
    }
    Start {
        config: file_config,
        snapshot: None,
        file,
    }
}

/// The background task following control.
pub struct Follower {
    reloader: Arc<Reloader>,
    client: Option<ControlClient>,
    metrics: Arc<Metrics>,
    after: Option<u64>,
}

impl Follower {
    /// Follows `control`, applying through `reloader`, starting after version `after`.
    pub fn new(
        control: &ControlConfig,
        reloader: Arc<Reloader>,
        metrics: Arc<Metrics>,
        after: Option<u64>,
    ) -> Self {
        let client = match ControlClient::new(control) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("cannot follow control: {e}");
                None
            }
        };
        Follower {
            reloader,
            client,
            metrics,
            after,
        }
    }

    /// Polls until the task is dropped.
    pub async fn run(&self) {
        let Some(client) = &self.client else { return };
        let mut after = self.after;
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        loop {
            match client.fetch(after, client.wait).await {
                Ok(None) => {
                    self.metrics.control_snapshot("unchanged");
                    backoff = MIN_BACKOFF;
                    if std::mem::take(&mut failing) {
                        tracing::info!("control answers again");
                    }
                }
                Ok(Some(snapshot)) => {
                    backoff = MIN_BACKOFF;
                    if std::mem::take(&mut failing) {
                        tracing::info!("control answers again");
                    }
                    let version = snapshot.version;
                    // Whatever the outcome, do not ask again for this version: a refused
                    // snapshot is retried by a reload or replaced by control's next write.
                    after = Some(version);
                    match self.reloader.apply_snapshot(snapshot).await {
                        Ok(_) => self.metrics.control_snapshot("applied"),
                        Err(_) => {
                            // Logged with every error by the reloader.
                            self.metrics.control_snapshot("refused");
                        }
                    }
                }
                Err(e) => {
                    self.metrics.control_snapshot("unreachable");
                    if !failing {
                        tracing::warn!(
                            "registry snapshot poll failed, serving the current config and retrying: {e}"
                        );
                    } else {
                        tracing::debug!("registry snapshot poll failed again: {e}");
                    }
                    failing = true;
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// A delay between half of `d` and `d`, so replicas do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    let extra = rand::random::<u64>() % (half.as_millis() as u64 + 1);
    half + Duration::from_millis(extra)
}

#[async_trait]
impl BackgroundService for Follower {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        tokio::select! {
            () = self.run() => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_config::SnapshotServer;

    use super::*;

    const SECRET: &str = "a-sessions-secret-of-at-least-32-bytes!";

    fn snapshot() -> Snapshot {
        Snapshot {
            version: 3,
            servers: vec![SnapshotServer {
                name: "gh".into(),
                url: "http://127.0.0.1:1/mcp".into(),
                credential: BTreeMap::from([
                    ("type".into(), "static".into()),
                    ("value".into(), "Bearer sync-unit-secret-value".into()),
                ]),
                resource_tools: None,
                callers: Vec::new(),
            }],
            gateways: vec![],
        }
    }

    fn path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sluice-sync-{}-{name}", std::process::id()))
    }

    #[test]
    fn sync_saved_snapshot_round_trips_sealed_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let p = path("roundtrip");
        let f = SnapshotFile::new(p.clone(), SECRET.as_bytes()).unwrap();
        assert!(f.load().unwrap().is_none());
        f.save(&snapshot()).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert!(raw.starts_with(MAGIC));
        let needle = b"sync-unit-secret-value";
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(f.load().unwrap(), Some(snapshot()));
        // Overwrites atomically.
        let mut s = snapshot();
        s.version = 4;
        f.save(&s).unwrap();
        assert_eq!(f.load().unwrap().unwrap().version, 4);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn sync_saved_snapshot_under_another_secret_or_damaged_is_refused() {
        let p = path("other");
        SnapshotFile::new(p.clone(), SECRET.as_bytes())
            .unwrap()
            .save(&snapshot())
            .unwrap();
        let other = SnapshotFile::new(p.clone(), b"another-secret-another-secret-0123456").unwrap();
        let e = other.load().unwrap_err();
        assert!(matches!(e, SyncError::Decrypt(_)), "{e}");
        let mut raw = std::fs::read(&p).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&p, &raw).unwrap();
        let same = SnapshotFile::new(p.clone(), SECRET.as_bytes()).unwrap();
        assert!(matches!(same.load(), Err(SyncError::Decrypt(_))));
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(same.load(), Err(SyncError::Decrypt(_))));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn sync_jitter_stays_between_half_and_whole() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn sync_errors_never_show_content() {
        let e = serde_json::from_slice::<Snapshot>(br#"{"version":"Bearer leaked"}"#).unwrap_err();
        assert!(!malformed(&e).to_string().contains("leaked"));
    }
}

//! `sluice bridge [--listen ADDR] [--restart] -- CMD ARGS…`: one stdio MCP server served as
//! Streamable HTTP until SIGTERM/Ctrl-C (exit 0) or until the server exits without
//! `--restart` (exit 1, with the exit status in the message).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use sluice_runtime::{Bridge, BridgeConfig};
use tokio::signal::unix::{SignalKind, signal};

/// How long the error answers of requests in flight may take to reach their clients after the
/// server died for good.
const FINAL_ANSWERS: Duration = Duration::from_secs(2);

pub fn run(listen: SocketAddr, restart: bool, name: String, command: Vec<String>) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        eprintln!("error: no server command given after --");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = BridgeConfig::new(name, program.clone(), args.to_vec());
    config.restart = restart;
    runtime.block_on(serve(config, listen))
}

async fn serve(config: BridgeConfig, listen: SocketAddr) -> ExitCode {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("error: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let shown = config.command.clone();
    let bridge = match Bridge::start(config, listen).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One line tests and wrappers can wait for: the endpoint accepts connections from now on.
    let banner = format!("bridge: serving `{shown}` at {}\n", bridge.url());
    let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    tokio::select! {
        reason = bridge.exited() => {
            bridge.drain(FINAL_ANSWERS).await;
            eprintln!("error: {reason}; the bridge stops (run it with --restart to restart the server)");
            ExitCode::FAILURE
        }
        _ = term.recv() => stop(bridge).await,
        _ = int.recv() => stop(bridge).await,
    }
}

async fn stop(bridge: Bridge) -> ExitCode {
    tracing::info!("stopping the server and the bridge");
    bridge.shutdown().await;
    ExitCode::SUCCESS
}

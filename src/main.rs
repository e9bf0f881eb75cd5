//! `sluice`: the MCP gateway's command line.
//!
//! `proxy` serves a config file, `check` validates one and prints every problem, `reload` asks a
//! running proxy to re-read its file, `up` runs the embedded default (a quickstart config and a
//! bundled example MCP server on 127.0.0.1), `control` runs the registry and its admin API,
//! `ctl` is the command line over that API, `bridge` serves a stdio MCP server as Streamable
//! HTTP.

mod bridge_cmd;
mod reload_cmd;
mod up_cmd;

mod example_server;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pingora::apps::http_app::HttpServer;
use pingora::services::listening::Service;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A high-performance MCP gateway built on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a config file.
    Proxy {
        /// Path to the TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file: prints every error as file:line:col: message.
    Check {
        /// Path to the TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask a running proxy to re-read its config file (POST /reload on its admin listener).
    /// Exit 0: applied; 1: refused (every error printed, the running config kept); 3: no
    /// proxy answered.
    Reload {
        /// The proxy's config file: its `proxy.admin_listen` is the address to ask.
        #[arg(long, short, conflicts_with = "admin")]
        config: Option<PathBuf>,
        /// The proxy's admin address instead (host:port).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Run the embedded default: the control plane (registry in sled), its orchestrator running
    /// the bundled example MCP server as a stdio installation behind the bridge, and a proxy
    /// serving the `default` gateway.
    Up {
        /// Address of the MCP listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Address of the admin listener (/healthz, /readyz).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: std::net::SocketAddr,
        /// Address of the control plane's admin API (`sluice ctl --url`).
        #[arg(long, default_value = "127.0.0.1:7070")]
        control_listen: std::net::SocketAddr,
        /// Where the registry, the proxy's saved snapshot and the generated secrets live.
        #[arg(long, default_value = up_cmd::DEFAULT_DATA)]
        data_dir: PathBuf,
    },
    /// Run the control process: the registry (sled), its admin API and the proxies' snapshots.
    Control {
        /// Path to the control TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage the registry through the control admin API (exit codes: 0 ok, 1 refused by the
    /// API, 2 usage, 3 control unreachable).
    Ctl(sluice_control::cli::CtlArgs),
    /// Serve a stdio MCP server as Streamable HTTP at http://LISTEN/mcp (also the entrypoint
    /// wrapper in containers). Exit 0 on SIGTERM or Ctrl-C (the server's process group is
    /// stopped first); exit 1 when the server exits and --restart is off.
    Bridge {
        /// Address to listen on (port 0: any free port; the chosen address is printed).
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
        /// Restart the server with jittered exponential backoff when it exits.
        #[arg(long)]
        restart: bool,
        /// Name of the server in log lines (its stderr is logged as `[NAME] line`).
        #[arg(long, default_value = "server")]
        name: String,
        /// The server's command and arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD ARGS")]
        command: Vec<String>,
    },
    /// Run only the bundled example MCP server (a stateless upstream for trials and benchmarks).
    ExampleServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3001")]
        listen: std::net::SocketAddr,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Speak MCP over stdin/stdout (one message per line) instead of HTTP.
        #[arg(long, conflicts_with_all = ["listen", "threads"])]
        stdio: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Proxy { config } => match proxy(&config) {
            Ok(never) => never,
            Err(e) => fail(e),
        },
        Command::Up {
            listen,
            admin_listen,
            control_listen,
            data_dir,
        } => {
            install_crypto_provider();
            let up = up_cmd::Up {
                listen,
                admin_listen,
                control_listen,
                data: data_dir,
            };
            match up_cmd::run(up) {
                Ok(code) => code,
                Err(e) => fail(e),
            }
        }
        Command::ExampleServer { stdio: true, .. } => example_server::serve_stdio(),
        Command::ExampleServer {
            listen, threads, ..
        } => example_only(listen, threads),
        Command::Bridge {
            listen,
            restart,
            name,
            command,
        } => bridge_cmd::run(listen, restart, name, command),
        Command::Reload { config, admin } => reload_cmd::run(config.as_deref(), admin.as_deref()),
        Command::Control { config } => match sluice_control::run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e.into()),
        },
        Command::Ctl(args) => sluice_control::cli::run(args),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

fn check(path: &std::path::Path) -> ExitCode {
    match sluice_config::load_file(path) {
        Ok(config) => {
            println!("{}: ok: {}", path.display(), config.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            if !errors.to_string().ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

fn proxy(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config =
        sluice_config::load_file(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    install_crypto_provider();
    let start = sluice_proxy::sync::start(path, config);
    tracing::info!("{}", start.config.summary());
    let server = sluice_proxy::ProxyServer::build_started(start, Some(path.to_owned()))
        .context("starting the proxy")?;
    server.run()
}

fn example_service(
    listen: &str,
    threads: usize,
) -> Service<HttpServer<example_server::ExampleServer>> {
    let mut example = Service::new(
        "example MCP server".to_owned(),
        HttpServer::new_app(example_server::ExampleServer),
    );
    example.add_tcp(listen);
    example.threads = Some(threads.max(1));
    example
}

fn example_only(listen: std::net::SocketAddr, threads: usize) -> ! {
    // A demo upstream has nothing to drain: exit promptly on SIGTERM (pingora waits 300 s).
    let conf = pingora::server::configuration::ServerConf {
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    server.add_service(example_service(&listen.to_string(), threads));
    let _ = std::io::Write::write_all(
        &mut std::io::stdout(),
        format!("example MCP server on http://{listen}/mcp\n").as_bytes(),
    );
    server.run_forever()
}

fn install_crypto_provider() {
    // rustls can see more than one provider in this build; pick one before any TLS handshake.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

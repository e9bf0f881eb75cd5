//! `sluice ctl`: the command line over the admin API. Human tables by default, the API's JSON
//! with `--json`, and exit codes a script can branch on: 0 ok, 1 the API refused (its message
//! printed), 2 usage (bad arguments, unreadable file), 3 control unreachable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use crate::client::{Answer, Client};

mod callers;

/// Default admin API address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// `sluice ctl` options.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Admin API URL [default: $SLUICE_CONTROL_URL or http://127.0.0.1:7070].
    #[arg(long)]
    url: Option<String>,
    /// Admin token [default: $SLUICE_ADMIN_TOKEN]; prefer the variable (arguments are visible
    /// to other users in the process list).
    #[arg(long)]
    token: Option<String>,
    /// Read the admin token from this file (e.g. `./data/up/admin.token` of `sluice up`).
    #[arg(long, conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Server templates (the catalog).
    Templates {
        #[command(subcommand)]
        action: TemplateAction,
    },
    /// Installations of templates (the servers proxies route to).
    Installations {
        #[command(subcommand)]
        action: InstallationAction,
    },
    /// Gateways and their tool assignments.
    Gateways {
        #[command(subcommand)]
        action: GatewayAction,
    },
    /// The audit log: who changed what, oldest first.
    Audit {
        /// Only entries after this version.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many entries (1..=1000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// The registry's version.
    Version,
}

#[derive(Debug, Subcommand)]
enum TemplateAction {
    /// List templates.
    List,
    /// Show one template.
    Get {
        /// The object's name.
        name: String,
    },
    /// Create a template from a JSON file (`-` = stdin).
    Create {
        /// The template as JSON (see control/openapi.json, `Template`).
        #[arg(long, short)]
        file: PathBuf,
    },
    /// Replace a template from a JSON file.
    Replace {
        /// The template's name.
        name: String,
        #[arg(long, short)]
        file: PathBuf,
    },
    /// Delete a template no installation uses.
    Delete {
        /// The object's name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct InstallationValues {
    /// The template to install.
    #[arg(long)]
    template: Option<String>,
    /// A field value, `field=value` (repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// A field value read from an environment variable, `field=VAR` (for secrets: keeps them
    /// out of the process list and shell history).
    #[arg(long = "set-env", value_name = "FIELD=VAR")]
    set_env: Vec<String>,
    /// Self-hosted: where it runs, `local` or `kubernetes` (one this control runs); absent,
    /// the control's default backend.
    #[arg(long, value_name = "BACKEND")]
    runtime: Option<String>,
    /// Whether proxies offer the server's resources as `read_*` tools: `auto` (only when it
    /// lists resources and no tools; the default), `off` or `on` (beside its own tools too).
    #[arg(long, value_name = "MODE", value_parser = ["auto", "off", "on"])]
    resource_tools: Option<String>,
    /// The whole installation as a JSON file instead (`-` = stdin).
    #[arg(long, short, conflicts_with_all = ["template", "set", "set_env", "runtime", "resource_tools"])]
    file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum InstallationAction {
    /// List installations with their status.
    List,
    /// Show one installation (secrets as "<secret>").
    Get {
        /// The object's name.
        name: String,
    },
    /// Install a template.
    Create {
        /// The installation's name: the server name proxies route by (`{name}__{tool}`).
        name: String,
        #[command(flatten)]
        values: InstallationValues,
    },
    /// Replace an installation; secrets not given keep their values.
    Replace {
        /// The installation's name: the server name proxies route by (`{name}__{tool}`).
        name: String,
        #[command(flatten)]
        values: InstallationValues,
    },
    /// Delete an installation no gateway shows.
    Delete {
        /// The object's name.
        name: String,
    },
    /// Recent log lines (stdout and stderr) of a self-hosted installation, secrets masked.
    Logs {
        /// The object's name.
        name: String,
    },
    /// What discovery found on the installation's server: tools, resources, prompts.
    Tools {
        /// The object's name.
        name: String,
    },
    /// The callers that have a per-caller secret for the installation (never the secrets).
    Callers {
        /// The installation.
        name: String,
    },
    /// Set a caller's secret for an installation whose template has a per_caller
    /// credential; the secret is read from a file or stdin, never from the command line.
    SetCaller {
        #[command(flatten)]
        caller: callers::CallerArgs,
        #[command(flatten)]
        source: callers::SecretSource,
    },
    /// Remove a caller's secret.
    UnsetCaller {
        #[command(flatten)]
        caller: callers::CallerArgs,
    },
}

#[derive(Debug, Args)]
struct GatewayFields {
    /// An installation whose every tool the gateway shows (repeatable).
    #[arg(long = "server")]
    servers: Vec<String>,
    /// A single `server__tool` the gateway shows (repeatable).
    #[arg(long = "tool")]
    tools: Vec<String>,
    /// Also show control's `sluice__*` tools (list, inspect, install, assign; rule them with
    /// the proxy's `[[gateways.auth.rules]]`).
    #[arg(long)]
    builtin_tools: bool,
    /// The whole gateway as a JSON file instead (`-` = stdin).
    #[arg(long, short, conflicts_with_all = ["servers", "tools", "builtin_tools"])]
    file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum GatewayAction {
    /// List gateways.
    List,
    /// Show one gateway.
    Get {
        /// The object's name.
        name: String,
    },
    /// Create a gateway.
    Create {
        /// The gateway's name, served at `/mcp/{name}`.
        name: String,
        #[command(flatten)]
        fields: GatewayFields,
    },
    /// Replace a gateway.
    Replace {
        /// The gateway's name, served at `/mcp/{name}`.
        name: String,
        #[command(flatten)]
        fields: GatewayFields,
    },
    /// Delete a gateway.
    Delete {
        /// The object's name.
        name: String,
    },
    /// Show an installation (or one `server__tool`) on a gateway.
    Assign {
        /// The gateway.
        gateway: String,
        /// An installation name, or `installation__tool`.
        entry: String,
    },
    /// Stop showing an installation or tool on a gateway.
    Unassign {
        /// The gateway.
        gateway: String,
        /// An installation name, or `installation__tool`.
        entry: String,
    },
}

/// A request to make, and how to print its answer.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    show: Show,
}

enum Show {
    Table(&'static str),
    Object,
    Written(&'static str),
    Version,
    /// `lines`, one per line.
    Lines,
    /// A discovered offer: one table of tools, resources and prompts.
    Offer,
    /// The callers with a per-caller secret.
    Callers,
    /// A caller's secret set or removed.
    Caller(&'static str),
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn read_json(path: &PathBuf) -> Result<Value, String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("stdin: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
    };
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

fn installation_body(name: &str, v: &InstallationValues) -> Result<Value, String> {
    if let Some(f) = &v.file {
        return read_json(f);
    }
    let template = v
        .template
        .as_deref()
        .ok_or("--template is required (or --file)")?;
    let mut values = BTreeMap::new();
    for s in &v.set {
        let (k, val) = s
            .split_once('=')
            .ok_or_else(|| format!("--set {s:?}: expected FIELD=VALUE"))?;
        values.insert(k.to_owned(), Value::String(val.to_owned()));
    }
    for s in &v.set_env {
        let (k, var) = s
            .split_once('=')
            .ok_or_else(|| format!("--set-env {s:?}: expected FIELD=VAR"))?;
        let val = std::env::var(var).map_err(|_| format!("--set-env: {var} is not set"))?;
        values.insert(k.to_owned(), Value::String(val));
    }
    let mut body = json!({"name": name, "template": template, "values": values});
    if let Some(runtime) = &v.runtime {
        body["runtime"] = json!(runtime);
    }
    if let Some(mode) = &v.resource_tools {
        body["resource_tools"] = json!(mode);
    }
    Ok(body)
}

fn gateway_body(name: &str, f: &GatewayFields) -> Result<Value, String> {
    match &f.file {
        Some(file) => read_json(file),
        None => Ok(
            json!({"name": name, "servers": f.servers, "tools": f.tools, "builtin_tools": f.builtin_tools}),
        ),
    }
}

fn call(command: &CtlCommand) -> Result<Call, String> {
    let c = |method, path: String, body, show| Call {
        method,
        path,
        body,
        show,
    };
    Ok(match command {
        CtlCommand::Version => c(Method::GET, "/v1/version".into(), None, Show::Version),
        CtlCommand::Audit { after, limit } => c(
            Method::GET,
            format!("/v1/audit?after={after}&limit={limit}"),
            None,
            Show::Table("entries"),
        ),
        CtlCommand::Templates { action } => match action {
            TemplateAction::List => c(
                Method::GET,
                "/v1/templates".into(),
                None,
                Show::Table("templates"),
            ),
            TemplateAction::Get { name } => c(
                Method::GET,
                format!("/v1/templates/{name}"),
                None,
                Show::Object,
            ),
            TemplateAction::Create { file } => c(
                Method::POST,
                "/v1/templates".into(),
                Some(read_json(file)?),
                Show::Written("created template"),
            ),
            TemplateAction::Replace { name, file } => c(
                Method::PUT,
                format!("/v1/templates/{name}"),
                Some(read_json(file)?),
                Show::Written("replaced template"),
            ),
            TemplateAction::Delete { name } => c(
                Method::DELETE,
                format!("/v1/templates/{name}"),
                None,
                Show::Written("deleted template"),
            ),
        },
        CtlCommand::Installations { action } => match action {
            InstallationAction::List => c(
                Method::GET,
                "/v1/installations".into(),
                None,
                Show::Table("installations"),
            ),
            InstallationAction::Get { name } => c(
                Method::GET,
                format!("/v1/installations/{name}"),
                None,
                Show::Object,
            ),
            InstallationAction::Create { name, values } => c(
                Method::POST,
                "/v1/installations".into(),
                Some(installation_body(name, values)?),
                Show::Written("created installation"),
            ),
            InstallationAction::Replace { name, values } => c(
                Method::PUT,
                format!("/v1/installations/{name}"),
                Some(installation_body(name, values)?),
                Show::Written("replaced installation"),
            ),
            InstallationAction::Delete { name } => c(
                Method::DELETE,
                format!("/v1/installations/{name}"),
                None,
                Show::Written("deleted installation"),
            ),
            InstallationAction::Tools { name } => c(
                Method::GET,
                format!("/v1/installations/{name}/tools"),
                None,
                Show::Offer,
            ),
            InstallationAction::Callers { name } => c(
                Method::GET,
                format!("/v1/installations/{name}/callers"),
                None,
                Show::Callers,
            ),
            InstallationAction::SetCaller { caller, source } => c(
                Method::PUT,
                format!("/v1/installations/{}/callers", caller.name),
                Some(callers::set_body(caller, callers::read_secret(source)?)),
                Show::Caller("set the secret"),
            ),
            InstallationAction::UnsetCaller { caller } => c(
                Method::DELETE,
                callers::unset_path(caller),
                None,
                Show::Caller("removed the secret"),
            ),
            InstallationAction::Logs { name } => c(
                Method::GET,
                format!("/v1/installations/{name}/logs"),
                None,
                Show::Lines,
            ),
        },
        CtlCommand::Gateways { action } => match action {
            GatewayAction::List => c(
                Method::GET,
                "/v1/gateways".into(),
                None,
                Show::Table("gateways"),
            ),
            GatewayAction::Get { name } => c(
                Method::GET,
                format!("/v1/gateways/{name}"),
                None,
                Show::Object,
            ),
            GatewayAction::Create { name, fields } => c(
                Method::POST,
                "/v1/gateways".into(),
                Some(gateway_body(name, fields)?),
                Show::Written("created gateway"),
            ),
            GatewayAction::Replace { name, fields } => c(
                Method::PUT,
                format!("/v1/gateways/{name}"),
                Some(gateway_body(name, fields)?),
                Show::Written("replaced gateway"),
            ),
            GatewayAction::Delete { name } => c(
                Method::DELETE,
                format!("/v1/gateways/{name}"),
                None,
                Show::Written("deleted gateway"),
            ),
            GatewayAction::Assign { gateway, entry } => c(
                Method::POST,
                format!("/v1/gateways/{gateway}/assignments"),
                Some(json!({"entry": entry})),
                Show::Written("assigned to gateway"),
            ),
            GatewayAction::Unassign { gateway, entry } => c(
                Method::DELETE,
                format!("/v1/gateways/{gateway}/assignments/{entry}"),
                None,
                Show::Written("unassigned from gateway"),
            ),
        },
    })
}

/// Runs `sluice ctl` and returns its exit code.
pub fn run(args: CtlArgs) -> ExitCode {
    let url = args
        .url
        .or_else(|| std::env::var("SLUICE_CONTROL_URL").ok())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let from_file = match &args.token_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(e) => return usage(format!("--token-file {}: {e}", path.display())),
        },
        None => None,
    };
    let token = args
        .token
        .or(from_file)
        .or_else(|| std::env::var("SLUICE_ADMIN_TOKEN").ok());
    let client = match Client::new(&url, token) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let call = match call(&args.command) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage(format!("cannot start: {e}")),
    };
    let answer =
        runtime.block_on(client.request(call.method.clone(), &call.path, call.body.as_ref()));
    match answer {
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
        Ok(a) if !(200..300).contains(&a.status) => {
            if args.json {
                println!("{}", a.body);
            }
            eprintln!("error: {}", error_line(&a));
            ExitCode::from(1)
        }
        Ok(a) => {
            if args.json {
                println!("{}", a.body);
            } else {
                print!("{}", human(&call.show, &a.body));
            }
            ExitCode::SUCCESS
        }
    }
}

fn error_line(a: &Answer) -> String {
    let message = a.body["message"].as_str().unwrap_or("no message");
    match a.body["field"].as_str() {
        Some(field) => format!("{field}: {message} (HTTP {})", a.status),
        None => format!("{message} (HTTP {})", a.status),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(text).collect();
            if items.is_empty() {
                "-".into()
            } else {
                items.join(",")
            }
        }
        other => other.to_string(),
    }
}

/// A table column: its header and how a row's cell is made.
type Column = (&'static str, fn(&Value) -> String);

/// The human form of an answer.
fn human(show: &Show, body: &Value) -> String {
    match show {
        Show::Version => format!("{}\n", body["version"]),
        Show::Callers => callers::table(body),
        Show::Caller(what) => callers::written(what, body),
        Show::Offer => {
            let mut cells = Vec::new();
            for (kind, key, name) in [
                ("tool", "tools", "name"),
                ("resource", "resources", "uri"),
                ("prompt", "prompts", "name"),
            ] {
                for item in body[key].as_array().into_iter().flatten() {
                    cells.push(vec![
                        kind.to_owned(),
                        text(&item[name]),
                        text(&item["description"]),
                    ]);
                }
            }
            // What proxies add: read-resource tools, by their own names like the tools.
            for item in body["resource_tools"]["tools"]
                .as_array()
                .into_iter()
                .flatten()
            {
                cells.push(vec![
                    "resource-tool".to_owned(),
                    text(&item["name"]),
                    text(&item["description"]),
                ]);
            }
            let mut out = table(&["KIND", "NAME", "DESCRIPTION"], &cells);
            if let Some(e) = body["error"].as_str() {
                out.push_str(&format!("last probe: {e}\n"));
            }
            out
        }
        Show::Lines => body["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|l| format!("{l}\n"))
            .collect(),
        Show::Object => format!(
            "{}\n",
            serde_json::to_string_pretty(body).unwrap_or_default()
        ),
        Show::Written(what) => {
            let name = body["deleted"]
                .as_str()
                .or(body["name"].as_str())
                .unwrap_or("?");
            format!("{what} {name} (version {})\n", body["version"])
        }
        Show::Table(key) => {
            let rows = body[key].as_array().cloned().unwrap_or_default();
            let columns: &[Column] = match *key {
                "templates" => &[
                    ("NAME", |r| text(&r["name"])),
                    ("TRANSPORT", |r| text(&r["transport"])),
                    ("FIELDS", |r| {
                        let fields = r["fields"].as_array().cloned().unwrap_or_default();
                        let names: Vec<String> = fields
                            .iter()
                            .map(|f| {
                                let secret = if f["secret"] == true { "*" } else { "" };
                                format!("{}{secret}", text(&f["name"]))
                            })
                            .collect();
                        if names.is_empty() {
                            "-".into()
                        } else {
                            names.join(",")
                        }
                    }),
                    ("VERSION", |r| text(&r["version"])),
                    ("DESCRIPTION", |r| text(&r["description"])),
                ],
                "installations" => &[
                    ("NAME", |r| text(&r["name"])),
                    ("TEMPLATE", |r| text(&r["template"])),
                    ("STATUS", |r| text(&r["status"]["state"])),
                    ("RUNTIME", |r| text(&r["status"]["runtime"])),
                    ("ENDPOINT", |r| text(&r["status"]["url"])),
                    ("LAST ERROR", |r| text(&r["status"]["last_error"])),
                    ("SECRETS", |r| text(&r["secrets"])),
                    ("RESOURCE TOOLS", |r| {
                        r["resource_tools"].as_str().unwrap_or("auto").to_owned()
                    }),
                    ("VERSION", |r| text(&r["version"])),
                ],
                "gateways" => &[
                    ("NAME", |r| text(&r["name"])),
                    ("SERVERS", |r| text(&r["servers"])),
                    ("TOOLS", |r| text(&r["tools"])),
                    ("VERSION", |r| text(&r["version"])),
                ],
                _ => &[
                    ("VERSION", |r| text(&r["version"])),
                    ("AT", |r| {
                        let at = r["at"].as_u64().unwrap_or(0);
                        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at);
                        humantime::format_rfc3339_seconds(t).to_string()
                    }),
                    ("ACTOR", |r| text(&r["actor"])),
                    ("ACTION", |r| text(&r["action"])),
                    ("KIND", |r| text(&r["kind"])),
                    ("NAME", |r| text(&r["name"])),
                ],
            };
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| columns.iter().map(|(_, f)| f(r)).collect())
                .collect();
            table(&columns.iter().map(|(h, _)| *h).collect::<Vec<_>>(), &cells)
        }
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_lists_read_resource_tools_after_the_servers_own_items() {
        let body = json!({"tools": [{"name": "echo", "description": "Echo."}],
            "resources": [{"uri": "docs://guide", "description": "How to."}], "prompts": [],
            "resource_tools": {"mode": "on", "skipped": 0, "tools": [
                {"name": "read_guide", "description": "Read the resource docs://guide", "uri": "docs://guide"}]}});
        assert_eq!(
            human(&Show::Offer, &body),
            "KIND           NAME          DESCRIPTION\ntool           echo          Echo.\nresource       docs://guide  How to.\nresource-tool  read_guide    Read the resource docs://guide\n"
        );
    }

    #[test]
    fn an_installation_shows_its_resource_tools_mode_auto_when_unset() {
        let body = json!({"installations": [
            {"name": "a", "template": "t", "secrets": [], "version": 2, "resource_tools": "on",
             "status": {"state": "configured"}},
            {"name": "b", "template": "t", "secrets": [], "version": 3,
             "status": {"state": "configured"}}
        ]});
        let out = human(&Show::Table("installations"), &body);
        let modes: Vec<&str> = out
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().nth(7).unwrap_or_default())
            .collect();
        assert_eq!(modes, ["on", "auto"], "{out}");
    }

    #[test]
    fn tables_align_columns_and_show_empty_lists_as_dashes() {
        let body = json!({"gateways": [
            {"name": "team", "servers": ["github", "jira"], "tools": [], "version": 12},
            {"name": "a", "servers": [], "tools": ["x__y"], "version": 3}
        ]});
        assert_eq!(
            human(&Show::Table("gateways"), &body),
            "NAME  SERVERS      TOOLS  VERSION\nteam  github,jira  -      12\na     -            x__y   3\n"
        );
    }

    #[test]
    fn installations_show_where_they_run() {
        let body = json!({"installations": [
            {"name": "files", "template": "fs", "secrets": [], "version": 4,
             "status": {"state": "running", "runtime": "kubernetes",
                        "url": "http://files.mcp.svc:8080/mcp"}}
        ]});
        let shown = human(&Show::Table("installations"), &body);
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines[0].starts_with("NAME   TEMPLATE  STATUS   RUNTIME     ENDPOINT"),
            "{shown}"
        );
        assert!(
            lines[1].starts_with("files  fs        running  kubernetes  http://files"),
            "{shown}"
        );
    }
}

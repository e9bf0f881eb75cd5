//! Names that two servers of a gateway without prefixes (`prefix = false`) both offer.
//!
//! Such a gateway shows the upstreams' own names, so a tool, prompt, resource URI or resource
//! template offered by two of its servers could be routed to either. Which one would be a
//! guess, and a call that reaches the wrong server is worse than no call: the clashing entries
//! are withheld from the gateway (neither is shown or routed) until only one server offers the
//! name. Every clash is kept here so the gateway can explain a refused call, `/readyz` can
//! list them, `sluice_catalog_conflicts` can count them, and the log says when one appears.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::Offer;
use crate::upstream::ServerIdx;

/// What kind of catalog entry clashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A tool name.
    Tool = 0,
    /// A prompt name.
    Prompt = 1,
    /// A resource URI.
    Resource = 2,
    /// A resource template's `uriTemplate`.
    ResourceTemplate = 3,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Tool => "tool",
            Kind::Prompt => "prompt",
            Kind::Resource => "resource",
            Kind::ResourceTemplate => "resource template",
        })
    }
}

/// One name offered by more than one server of a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// What the name is.
    pub kind: Kind,
    /// The name (or URI, or URI template) as the servers offer it.
    pub name: String,
    /// The servers offering it, in the gateway's order.
    pub servers: Vec<String>,
}

impl Conflict {
    /// `'a', 'b'` for messages.
    pub fn servers_list(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every clash of one gateway, with a lookup by kind and name.
#[derive(Debug, Default)]
pub struct Conflicts {
    list: Vec<Conflict>,
    /// Per [`Kind`]: name -> index in `list`.
    index: [HashMap<Box<str>, usize>; 4],
}

impl Conflicts {
    /// Finds the names of each kind that more than one server offers. `offers` are per kind,
    /// in the gateway's server order; a server offering a name twice is no clash.
    pub(super) fn find(
        offers: [(Kind, &[Offer<'_>]); 4],
        server_names: &HashMap<ServerIdx, &str>,
    ) -> Self {
        let mut out = Conflicts::default();
        for (kind, offers) in offers {
            let mut owners: HashMap<&str, Vec<ServerIdx>> = HashMap::new();
            let mut order = Vec::new();
            for o in offers {
                let servers = owners.entry(o.name).or_insert_with(|| {
                    order.push(o.name);
                    Vec::new()
                });
                if !servers.contains(&o.server) {
                    servers.push(o.server);
                }
            }
            for name in order {
                let servers = &owners[name];
                if servers.len() < 2 {
                    continue;
                }
                out.index[kind as usize].insert(name.into(), out.list.len());
                out.list.push(Conflict {
                    kind,
                    name: name.to_owned(),
                    servers: servers
                        .iter()
                        .map(|i| server_names.get(i).copied().unwrap_or("?").to_owned())
                        .collect(),
                });
            }
        }
        out
    }

    /// The clash over `name` of `kind`, if it is one.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Conflict> {
        self.index[kind as usize].get(name).map(|&i| &self.list[i])
    }

    /// Whether `name` of `kind` is withheld.
    pub fn withholds(&self, kind: Kind, name: &str) -> bool {
        self.index[kind as usize].contains_key(name)
    }

    /// Every clash, tools first, each kind in the order the names were first offered.
    pub fn list(&self) -> &[Conflict] {
        &self.list
    }

    /// Number of clashes.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Logs the clashes of `gateway` that appeared since its previous catalog (`before`) as
/// errors, and those that went away as information, so a refresh that changes nothing about
/// them stays quiet.
pub fn log_changes(gateway: &str, before: &[Conflict], after: &[Conflict]) {
    for c in after.iter().filter(|c| !before.contains(c)) {
        tracing::error!(
            gateway,
            kind = %c.kind,
            name = %c.name,
            servers = %c.servers.join(", "),
            "servers {} of gateway '{gateway}' (prefix = false) all offer the {} '{}'; it is withheld from the gateway until only one server offers it (or set prefix = true)",
            c.servers_list(),
            c.kind,
            c.name,
        );
    }
    let still = |c: &Conflict| after.iter().any(|a| a.kind == c.kind && a.name == c.name);
    for c in before.iter().filter(|c| !still(c)) {
        tracing::info!(
            gateway,
            kind = %c.kind,
            name = %c.name,
            "the {} '{}' of gateway '{gateway}' is no longer offered by more than one server",
            c.kind,
            c.name,
        );
    }
}

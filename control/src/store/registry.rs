//! Writes and reads of templates, installations and gateways: the checks that need other
//! objects (references, conflicts) run under the store's write lock, then one `commit`.

use std::collections::BTreeMap;

use super::{Mode, Op, Store, StoreError, T, Versioned, secret_place};
use crate::model::{
    Discovered, Gateway, Installation, InstallationInput, Invalid, RunState, SelfHosted, Template,
};
use crate::render;
use crate::secrets::Sealed;

impl Store {
    // ---- templates ----

    /// Every template, by name.
    pub fn templates(&self) -> Result<Vec<Versioned<Template>>, StoreError> {
        self.all(T::Templates)
    }

    /// One template.
    pub fn template(&self, name: &str) -> Result<Option<Versioned<Template>>, StoreError> {
        self.get(T::Templates, name)
    }

    /// Creates or replaces a template. A replaced template must still fit every installation
    /// made from it.
    pub fn put_template(
        &self,
        actor: &str,
        template: Template,
        mode: Mode,
    ) -> Result<u64, StoreError> {
        template.validate()?;
        let _w = self.write_lock();
        let exists = self.tree(T::Templates).contains_key(&template.name)?;
        check_mode(mode, exists, "template", &template.name)?;
        // Every installation must still fit; one whose fields changed secrecy is rewritten
        // in the same write, so a secret field's value is never stored in clear.
        let mut refits = Vec::new();
        for inst in self.all::<Versioned<Installation>>(T::Installations)? {
            if inst.item.template != template.name {
                continue;
            }
            let kept = self.installation_values(&inst.item)?;
            let input = InstallationInput {
                name: inst.item.name.clone(),
                template: template.name.clone(),
                values: inst.item.values.clone(),
                runtime: None,
                resource_tools: inst.item.resource_tools,
            };
            let resolved = render::resolve(&template, &input, &kept)
                .and_then(|r| render::server(&template, &input.name, &r.all, None).map(|_| r))
                .map_err(|e| StoreError::InUse {
                    kind: "template",
                    name: template.name.clone(),
                    by: format!(
                        "installation {:?}, which it would no longer fit ({e})",
                        inst.item.name
                    ),
                })?;
            if !crate::callers::is_per_caller(&template) && self.has_callers(&inst.item.name)? {
                return Err(StoreError::InUse {
                    kind: "template",
                    name: template.name.clone(),
                    by: format!(
                        "installation {:?}, which has per-caller secrets the new credential would not use (unset them first)",
                        inst.item.name
                    ),
                });
            }
            let secrets: Vec<String> = resolved.secrets.keys().cloned().collect();
            if secrets != inst.item.secrets {
                refits.push((inst, resolved));
            }
        }
        let name = template.name.clone();
        self.commit(actor, mode.action(), "template", &name, |version, at| {
            let mut ops = Vec::new();
            for (inst, resolved) in refits {
                let (n, old) = (&inst.item.name, Some(&inst.item));
                let runtime = inst.item.runtime;
                ops.extend(self.installation_ops(version, at, n, &name, old, resolved, runtime));
            }
            let record = Versioned {
                version,
                updated_at: at,
                item: template,
            };
            ops.push(Op::put(T::Templates, &name, &record));
            Ok(ops)
        })
    }

    /// Deletes a template no installation uses.
    pub fn delete_template(&self, actor: &str, name: &str) -> Result<u64, StoreError> {
        let _w = self.write_lock();
        if !self.tree(T::Templates).contains_key(name)? {
            return Err(not_found("template", name));
        }
        if let Some(inst) = self
            .all::<Versioned<Installation>>(T::Installations)?
            .into_iter()
            .find(|i| i.item.template == name)
        {
            return Err(StoreError::InUse {
                kind: "template",
                name: name.to_owned(),
                by: format!("installation {:?}", inst.item.name),
            });
        }
        self.commit(actor, "delete", "template", name, |_, _| {
            Ok(vec![Op::remove(T::Templates, name)])
        })
    }

    // ---- installations ----

    /// Every installation, by name. Secret values are not in it, only their names.
    pub fn installations(&self) -> Result<Vec<Versioned<Installation>>, StoreError> {
        self.all(T::Installations)
    }

    /// One installation.
    pub fn installation(&self, name: &str) -> Result<Option<Versioned<Installation>>, StoreError> {
        self.get(T::Installations, name)
    }

    /// Every value of an installation, secrets opened, as text.
    pub(super) fn installation_values(
        &self,
        inst: &Installation,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let mut values: BTreeMap<String, String> = inst
            .values
            .iter()
            .map(|(k, v)| (k.clone(), render::text(v)))
            .collect();
        for field in &inst.secrets {
            let place = secret_place(&inst.name, field);
            let sealed: Sealed =
                self.get(T::Secrets, &place)?
                    .ok_or_else(|| StoreError::Corrupt {
                        tree: "secrets",
                        key: place.clone(),
                        reason: "missing".into(),
                    })?;
            values.insert(field.clone(), self.keys.open(&place, &sealed)?);
        }
        Ok(values)
    }

    /// Creates or replaces an installation: values checked against the template, the server
    /// it makes checked by the config loader, secrets sealed into `secrets`. On replace, a
    /// secret the input leaves out keeps its stored value.
    pub fn put_installation(
        &self,
        actor: &str,
        input: InstallationInput,
        mode: Mode,
    ) -> Result<u64, StoreError> {
        crate::model::check_name("installations.name", &input.name)?;
        if input.name == sluice_config::BUILTIN_SERVER {
            return Err(crate::model::Invalid::new(
                "installations.name",
                format!(
                    "{:?} is reserved for the built-in tools (sluice__*) of gateways with builtin_tools = true",
                    sluice_config::BUILTIN_SERVER
                ),
            )
            .into());
        }
        let runtime = input.runtime_kind()?;
        let _w = self.write_lock();
        let old: Option<Versioned<Installation>> = self.get(T::Installations, &input.name)?;
        check_mode(mode, old.is_some(), "installation", &input.name)?;
        let template = self
            .template(&input.template)?
            .ok_or_else(|| {
                Invalid::new(
                    "installations.template",
                    format!("template {:?} does not exist", input.template),
                )
            })?
            .item;
        if runtime.is_some() && template.transport != crate::model::Transport::Stdio {
            return Err(Invalid::new(
                "installations.runtime",
                "only self-hosted (stdio) installations run on a runtime",
            )
            .into());
        }
        let kept = match &old {
            Some(o) if o.item.template == input.template => self.installation_values(&o.item)?,
            _ => BTreeMap::new(),
        };
        let resolved = render::resolve(&template, &input, &kept)?;
        render::server(&template, &input.name, &resolved.all, None)?;
        if !crate::callers::is_per_caller(&template) && self.has_callers(&input.name)? {
            return Err(Invalid::new(
                "installations.template",
                format!(
                    "template {:?} has no per_caller credential, and the installation has per-caller secrets (unset them first)",
                    template.name
                ),
            )
            .into());
        }
        let name = input.name.clone();
        self.commit(
            actor,
            mode.action(),
            "installation",
            &name,
            |version, at| {
                let old = old.as_ref().map(|o| &o.item);
                let t = &template.name;
                Ok(self.installation_ops(version, at, &name, t, old, resolved, runtime))
            },
        )
    }

    /// The writes that store an installation's resolved values: its record, its sealed
    /// secrets, and the removal of secrets it no longer has.
    #[allow(clippy::too_many_arguments)]
    fn installation_ops(
        &self,
        version: u64,
        at: u64,
        name: &str,
        template: &str,
        old: Option<&Installation>,
        resolved: render::Resolved,
        runtime: Option<crate::model::RuntimeKind>,
    ) -> Vec<Op> {
        let mut ops = Vec::new();
        for field in old.iter().flat_map(|o| &o.secrets) {
            if !resolved.secrets.contains_key(field) {
                ops.push(Op::remove(T::Secrets, &secret_place(name, field)));
            }
        }
        for (field, value) in &resolved.secrets {
            let place = secret_place(name, field);
            ops.push(Op::put(T::Secrets, &place, &self.keys.seal(&place, value)));
        }
        let record = Versioned {
            version,
            updated_at: at,
            item: Installation {
                name: name.to_owned(),
                template: template.to_owned(),
                secrets: resolved.secrets.keys().cloned().collect(),
                runtime,
                values: resolved.plain,
                resource_tools: resolved.resource_tools,
            },
        };
        ops.push(Op::put(T::Installations, name, &record));
        ops
    }

    /// Deletes an installation no gateway shows, with its secrets and its callers' secrets.
    pub fn delete_installation(&self, actor: &str, name: &str) -> Result<u64, StoreError> {
        let _w = self.write_lock();
        let inst: Versioned<Installation> = self
            .get(T::Installations, name)?
            .ok_or_else(|| not_found("installation", name))?;
        if let Some(g) = self
            .gateways()?
            .into_iter()
            .find(|g| g.item.referenced_servers().any(|s| s == name))
        {
            return Err(StoreError::InUse {
                kind: "installation",
                name: name.to_owned(),
                by: format!("gateway {:?}", g.item.name),
            });
        }
        self.commit(actor, "delete", "installation", name, |_, _| {
            let mut ops: Vec<Op> = inst
                .item
                .secrets
                .iter()
                .map(|f| Op::remove(T::Secrets, &secret_place(name, f)))
                .collect();
            ops.extend(self.caller_removals(name)?);
            ops.push(Op::remove(T::Installations, name));
            ops.push(Op::remove(T::Status, name));
            ops.push(Op::remove(T::Discovered, name));
            Ok(ops)
        })
    }

    // ---- self-hosted installations (the orchestrator's side) ----

    /// Every self-hosted installation with its command and environment filled in (secrets
    /// opened); installations whose template is gone are skipped.
    pub fn self_hosted(&self) -> Result<Vec<SelfHosted>, StoreError> {
        let _r = self.read_lock();
        let mut out = Vec::new();
        for inst in self.installations()? {
            let Some(template) = self.template(&inst.item.template)? else {
                continue;
            };
            let values = self.installation_values(&inst.item)?;
            if let Some(mut run) = render::self_hosted(&template.item, &inst.item.name, &values) {
                run.runtime = inst.item.runtime;
                out.push(run);
            }
        }
        Ok(out)
    }

    /// An installation's secret values, to mask out of what its server prints.
    pub fn secret_values(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let _r = self.read_lock();
        let Some(inst) = self.installation(name)? else {
            return Ok(Vec::new());
        };
        let Some(template) = self.template(&inst.item.template)? else {
            return Ok(Vec::new());
        };
        let values = self.installation_values(&inst.item)?;
        Ok(render::secret_values(&template.item, &values))
    }

    /// The run state of an installation, if the orchestrator has written one.
    pub fn run_state(&self, name: &str) -> Result<Option<Versioned<RunState>>, StoreError> {
        self.get(T::Status, name)
    }

    /// Records an installation's run state (actor `orchestrator`); `None` when it is unchanged
    /// or the installation is gone, so a steady orchestrator writes nothing.
    pub fn set_run_state(&self, name: &str, state: &RunState) -> Result<Option<u64>, StoreError> {
        let _w = self.write_lock();
        if self.tree(T::Installations).get(name)?.is_none() {
            return Ok(None);
        }
        let current: Option<Versioned<RunState>> = self.get(T::Status, name)?;
        if current.is_some_and(|c| c.item == *state) {
            return Ok(None);
        }
        self.commit(
            "orchestrator",
            "status",
            "installation",
            name,
            |version, at| {
                let record = Versioned {
                    version,
                    updated_at: at,
                    item: state.clone(),
                };
                Ok(vec![Op::put(T::Status, name, &record)])
            },
        )
        .map(Some)
    }

    /// How discovery reaches each installation it can: remote ones at their URL, self-hosted
    /// ones at their running endpoint (not yet running ones are skipped).
    pub fn discovery_probes(&self) -> Result<Vec<crate::discovery::Probe>, StoreError> {
        let _r = self.read_lock();
        let mut out = Vec::new();
        for inst in self.installations()? {
            let Some(template) = self.template(&inst.item.template)? else {
                continue;
            };
            let values = self.installation_values(&inst.item)?;
            let run: Option<Versioned<RunState>> = self.get(T::Status, &inst.item.name)?;
            let url = run
                .as_ref()
                .filter(|r| r.item.state == "running")
                .and_then(|r| r.item.url.as_deref());
            let Some(server) = render::server(&template.item, &inst.item.name, &values, url)?
            else {
                continue;
            };
            let secrets = render::secret_values(&template.item, &values);
            let (header, unsupported) = match crate::discovery::header_of(&server.credential) {
                Ok(h) => (h, None),
                Err(why) => (None, Some(why)),
            };
            out.push(crate::discovery::Probe {
                name: inst.item.name.clone(),
                url: server.url,
                header,
                unsupported,
                secrets,
            });
        }
        Ok(out)
    }

    /// Stores what discovery found on an installation's server: a cache beside the
    /// registry, written without a version bump or audit entry (nothing a proxy reads).
    /// Dropped when the installation is gone.
    pub fn put_discovered(&self, name: &str, found: &Discovered) -> Result<(), StoreError> {
        let _w = self.write_lock();
        if self.tree(T::Installations).get(name)?.is_none() {
            return Ok(());
        }
        let bytes = serde_json::to_vec(found).map_err(|e| StoreError::Corrupt {
            tree: "discovered",
            key: name.to_owned(),
            reason: e.to_string(),
        })?;
        self.tree(T::Discovered).insert(name, bytes)?;
        Ok(())
    }

    /// What discovery last found on an installation's server.
    pub fn discovered(&self, name: &str) -> Result<Option<Discovered>, StoreError> {
        self.get(T::Discovered, name)
    }

    /// Forgets the run state of an installation the orchestrator no longer runs.
    pub fn clear_run_state(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let _w = self.write_lock();
        if self.tree(T::Status).get(name)?.is_none() {
            return Ok(None);
        }
        self.commit("orchestrator", "stopped", "installation", name, |_, _| {
            Ok(vec![Op::remove(T::Status, name)])
        })
        .map(Some)
    }

    // ---- gateways ----

    /// Every gateway, by name.
    pub fn gateways(&self) -> Result<Vec<Versioned<Gateway>>, StoreError> {
        self.all(T::Gateways)
    }

    /// One gateway.
    pub fn gateway(&self, name: &str) -> Result<Option<Versioned<Gateway>>, StoreError> {
        self.get(T::Gateways, name)
    }

    /// Creates or replaces a gateway whose servers and tools name installations.
    pub fn put_gateway(
        &self,
        actor: &str,
        gateway: Gateway,
        mode: Mode,
    ) -> Result<u64, StoreError> {
        gateway.validate()?;
        let _w = self.write_lock();
        let exists = self.tree(T::Gateways).contains_key(&gateway.name)?;
        check_mode(mode, exists, "gateway", &gateway.name)?;
        self.check_references(&gateway)?;
        render::check_gateway(&gateway)?;
        let name = gateway.name.clone();
        self.commit(actor, mode.action(), "gateway", &name, |version, at| {
            let record = Versioned {
                version,
                updated_at: at,
                item: gateway,
            };
            Ok(vec![Op::put(T::Gateways, &name, &record)])
        })
    }

    /// Deletes a gateway.
    pub fn delete_gateway(&self, actor: &str, name: &str) -> Result<u64, StoreError> {
        let _w = self.write_lock();
        if !self.tree(T::Gateways).contains_key(name)? {
            return Err(not_found("gateway", name));
        }
        self.commit(actor, "delete", "gateway", name, |_, _| {
            Ok(vec![Op::remove(T::Gateways, name)])
        })
    }

    fn check_references(&self, gateway: &Gateway) -> Result<(), StoreError> {
        let fields = gateway
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("gateways.servers[{i}]"), s.as_str()))
            .chain(gateway.tools.iter().enumerate().filter_map(|(i, t)| {
                t.split_once("__")
                    .map(|(s, _)| (format!("gateways.tools[{i}]"), s))
            }));
        for (field, server) in fields {
            if !self.tree(T::Installations).contains_key(server)? {
                return Err(
                    Invalid::new(field, format!("installation {server:?} does not exist")).into(),
                );
            }
        }
        Ok(())
    }

    /// Adds `entry` (an installation name, or `server__tool`) to a gateway.
    pub fn assign(&self, actor: &str, gateway: &str, entry: &str) -> Result<u64, StoreError> {
        self.change_assignment(actor, gateway, entry, true)
    }

    /// Removes `entry` from a gateway.
    pub fn unassign(&self, actor: &str, gateway: &str, entry: &str) -> Result<u64, StoreError> {
        self.change_assignment(actor, gateway, entry, false)
    }

    fn change_assignment(
        &self,
        actor: &str,
        gateway: &str,
        entry: &str,
        add: bool,
    ) -> Result<u64, StoreError> {
        let _w = self.write_lock();
        let mut g: Versioned<Gateway> = self
            .get(T::Gateways, gateway)?
            .ok_or_else(|| not_found("gateway", gateway))?;
        let list = if entry.contains("__") {
            &mut g.item.tools
        } else {
            &mut g.item.servers
        };
        let present = list.iter().any(|e| e == entry);
        match (add, present) {
            (true, true) => {
                return Err(StoreError::Exists {
                    kind: "assignment",
                    name: format!("{gateway}/{entry}"),
                });
            }
            (false, false) => return Err(not_found("assignment", &format!("{gateway}/{entry}"))),
            (true, false) => list.push(entry.to_owned()),
            (false, true) => list.retain(|e| e != entry),
        }
        g.item.validate()?;
        self.check_references(&g.item)?;
        render::check_gateway(&g.item)?;
        let action = if add { "assign" } else { "unassign" };
        let object = format!("{gateway}/{entry}");
        self.commit(actor, action, "gateway", &object, |version, at| {
            g.version = version;
            g.updated_at = at;
            Ok(vec![Op::put(T::Gateways, gateway, &g)])
        })
    }
}

fn not_found(kind: &'static str, name: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        name: name.to_owned(),
    }
}

fn check_mode(mode: Mode, exists: bool, kind: &'static str, name: &str) -> Result<(), StoreError> {
    match (mode, exists) {
        (Mode::Create, true) => Err(StoreError::Exists {
            kind,
            name: name.to_owned(),
        }),
        (Mode::Replace, false) => Err(not_found(kind, name)),
        _ => Ok(()),
    }
}

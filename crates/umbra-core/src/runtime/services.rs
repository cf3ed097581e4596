//! Services made at runtime (control plane): `PUT`/`DELETE /api/services/{name}` and a
//! deploy's new servers. They are validated as the config's `[services.X]`, go through the same
//! build → swap as every change, and are stored as `service:<name>` rows of kind `service`.

use std::collections::BTreeSet;

use super::{ControlError, Persist, Runtime};
use crate::config::{validate_service, ConfigError, RawHealth, RawService, ServiceSpec, Source};

/// Prefix of a service's row name in the store's `routes` table.
pub const SERVICE_KEY_PREFIX: &str = "service:";

pub(super) fn store_key(name: &str) -> String {
    format!("{SERVICE_KEY_PREFIX}{name}")
}

/// Validates a service as written for the API: the config's rules, and at least one server.
fn validated(name: &str, raw: &RawService) -> Result<ServiceSpec, ControlError> {
    let mut errs = match validate_service(name, raw, Source::Api, "") {
        Ok(spec) if !raw.servers.is_empty() => return Ok(spec),
        Ok(_) => Vec::new(),
        Err(e) => e,
    };
    if raw.servers.is_empty() {
        errs.push(ConfigError::new("servers", "needs at least one server URL"));
    }
    Err(ControlError::Invalid(errs))
}

/// Parses and validates one stored service document; the error says which and why.
pub(super) fn parse_stored(
    key: &str,
    doc: serde_json::Value,
) -> Result<(RawService, ServiceSpec), String> {
    let name = key.strip_prefix(SERVICE_KEY_PREFIX).unwrap_or(key);
    let raw: RawService =
        serde_json::from_value(doc).map_err(|e| format!("stored service `{name}`: {e}"))?;
    let spec = validated(name, &raw).map_err(|e| format!("stored service `{name}`: {e}"))?;
    Ok((raw, spec))
}

/// A validated service as written, e.g. to keep a file service's health check when a deploy
/// replaces its servers.
pub fn raw_of(spec: &ServiceSpec) -> RawService {
    let ms = |d: std::time::Duration| format!("{}ms", d.as_millis());
    RawService {
        servers: spec.servers.iter().map(|a| a.url()).collect(),
        health: spec.health.as_ref().map(|h| RawHealth {
            path: h.path.clone(),
            interval: Some(ms(h.interval)),
            timeout: Some(ms(h.timeout)),
            rise: Some(h.rise),
            fall: Some(h.fall),
        }),
        balance: Some(
            match spec.balance {
                crate::config::Balance::RoundRobin => "round_robin",
                crate::config::Balance::LeastRequests => "least_requests",
            }
            .to_string(),
        ),
        ca: spec.ca.as_ref().map(|c| c.path.display().to_string()),
    }
}

/// Routes (by name) that use `service` as their service, shadow, secondary or canary.
fn users(rt: &Runtime, service: &str) -> BTreeSet<String> {
    let snap = rt.snapshot();
    snap.routes
        .iter()
        .filter(|r| {
            let s = &r.spec;
            s.service == service
                || s.canary.as_ref().is_some_and(|c| c.service == service)
                || s.shadows
                    .iter()
                    .any(|sh| sh.service == service || sh.secondary.as_deref() == Some(service))
        })
        .map(|r| r.spec.name.clone())
        .collect()
}

impl Runtime {
    /// Where a service is defined now: `api` for one made at runtime (or replaced by a
    /// deploy), else the file or docker; None when there is no such service.
    pub fn service_origin(&self, name: &str) -> Option<Source> {
        let inputs = self.inputs.lock().expect("inputs lock");
        if inputs.api_services.contains_key(name) {
            Some(Source::Api)
        } else if inputs.file.services.contains_key(name) {
            Some(Source::File)
        } else if inputs.docker.services.contains_key(name) {
            Some(Source::Docker)
        } else {
            None
        }
    }

    /// Creates or replaces a service made through the API. A file or docker service of that
    /// name is read-only (409), as routes are.
    pub fn put_service(
        &self,
        name: &str,
        raw: RawService,
        actor: &str,
    ) -> Result<Persist, ControlError> {
        let spec = validated(name, &raw)?;
        let mut inputs = self.inputs.lock().expect("inputs lock");
        let origin = if inputs.file.services.contains_key(name) {
            Some("the config file")
        } else if inputs.docker.services.contains_key(name) {
            Some("docker")
        } else {
            None
        };
        if let (Some(origin), false) = (origin, inputs.api_services.contains_key(name)) {
            return Err(ControlError::ReadOnly {
                name: name.to_string(),
                origin,
            });
        }
        let existed = inputs
            .api_services
            .insert(name.to_string(), (raw.clone(), spec))
            .is_some();
        self.swap(&inputs);
        drop(inputs);
        let kind = if existed {
            "service.update"
        } else {
            "service.create"
        };
        let detail = serde_json::json!({ "service": name, "spec": raw });
        self.event(kind, None, actor, detail);
        Ok(Persist::Service(name.to_string(), Box::new(raw)))
    }

    /// Deletes a service made through the API: 404 when there is none, 409 while a route
    /// uses it. For a deploy's replacement of a file or docker service, the deletion returns
    /// to that definition.
    pub fn delete_service(&self, name: &str, actor: &str) -> Result<Persist, ControlError> {
        let mut inputs = self.inputs.lock().expect("inputs lock");
        if !inputs.api_services.contains_key(name) {
            if inputs.file.services.contains_key(name) || inputs.docker.services.contains_key(name)
            {
                return Err(ControlError::ReadOnly {
                    name: name.to_string(),
                    origin: if inputs.file.services.contains_key(name) {
                        "the config file"
                    } else {
                        "docker"
                    },
                });
            }
            return Err(ControlError::NoService(name.to_string()));
        }
        // A deploy's replacement of a file or docker service leaves that service in place.
        let underneath =
            inputs.file.services.contains_key(name) || inputs.docker.services.contains_key(name);
        let used = if underneath {
            BTreeSet::new()
        } else {
            users(self, name)
        };
        if !used.is_empty() {
            let list: Vec<String> = used.iter().map(|r| format!("`{r}`")).collect();
            return Err(ControlError::Conflict(format!(
                "service `{name}` is used by route {}; change or delete those routes first",
                list.join(", ")
            )));
        }
        inputs.api_services.remove(name);
        self.swap(&inputs);
        drop(inputs);
        self.event(
            "service.delete",
            None,
            actor,
            serde_json::json!({ "service": name }),
        );
        Ok(Persist::DeleteService(name.to_string()))
    }

    /// Replaces a service's servers, keeping its health check and balancing (a deploy). A file
    /// or docker service gets a runtime definition that takes its place.
    pub fn replace_servers(
        &self,
        name: &str,
        servers: Vec<String>,
        event: (&str, &str, serde_json::Value),
    ) -> Result<Persist, ControlError> {
        let mut inputs = self.inputs.lock().expect("inputs lock");
        let current = inputs
            .api_services
            .get(name)
            .map(|(raw, _)| raw.clone())
            .or_else(|| inputs.file.services.get(name).map(raw_of))
            .or_else(|| inputs.docker.services.get(name).map(raw_of))
            .ok_or_else(|| ControlError::NoService(name.to_string()))?;
        let raw = RawService { servers, ..current };
        let spec = validated(name, &raw)?;
        inputs
            .api_services
            .insert(name.to_string(), (raw.clone(), spec));
        self.swap(&inputs);
        drop(inputs);
        let (route, actor, detail) = event;
        self.event("deploy", Some(route), actor, detail);
        Ok(Persist::Service(name.to_string(), Box::new(raw)))
    }
}

//! The admin API's routes in one table: the dispatcher matches requests against it and a
//! test checks every entry against `openapi.json`, so the description cannot miss a route.

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    /// Liveness, no token.
    Healthz,
    /// The global version.
    Version,
    /// List templates.
    ListTemplates,
    /// Create a template.
    CreateTemplate,
    /// Read a template.
    GetTemplate,
    /// Replace a template.
    ReplaceTemplate,
    /// Delete a template.
    DeleteTemplate,
    /// List installations.
    ListInstallations,
    /// Create an installation.
    CreateInstallation,
    /// Read an installation.
    GetInstallation,
    /// Replace an installation.
    ReplaceInstallation,
    /// Delete an installation.
    DeleteInstallation,
    /// Recent log lines of a self-hosted installation.
    InstallationLogs,
    /// What discovery found on an installation's server.
    InstallationTools,
    /// The callers with a per-caller secret for an installation (never the secrets).
    ListCallers,
    /// Set one caller's secret for an installation.
    SetCaller,
    /// Remove one caller's secret (`?issuer=&subject=`).
    UnsetCaller,
    /// List gateways.
    ListGateways,
    /// Create a gateway.
    CreateGateway,
    /// Read a gateway.
    GetGateway,
    /// Replace a gateway.
    ReplaceGateway,
    /// Delete a gateway.
    DeleteGateway,
    /// Add a server or tool to a gateway.
    Assign,
    /// Remove a server or tool from a gateway.
    Unassign,
    /// The audit log.
    Audit,
    /// Long-poll for the proxies' snapshot (proxy tokens only).
    Snapshot,
    /// The built-in tools' MCP endpoint (proxy tokens only).
    Mcp,
}

/// Every route: method, path as written in `openapi.json` (`{name}` = one segment), id.
pub const ROUTES: &[(&str, &str, RouteId)] = &[
    ("GET", "/healthz", RouteId::Healthz),
    ("GET", "/v1/version", RouteId::Version),
    ("GET", "/v1/templates", RouteId::ListTemplates),
    ("POST", "/v1/templates", RouteId::CreateTemplate),
    ("GET", "/v1/templates/{name}", RouteId::GetTemplate),
    ("PUT", "/v1/templates/{name}", RouteId::ReplaceTemplate),
    ("DELETE", "/v1/templates/{name}", RouteId::DeleteTemplate),
    ("GET", "/v1/installations", RouteId::ListInstallations),
    ("POST", "/v1/installations", RouteId::CreateInstallation),
    ("GET", "/v1/installations/{name}", RouteId::GetInstallation),
    (
        "PUT",
        "/v1/installations/{name}",
        RouteId::ReplaceInstallation,
    ),
    (
        "DELETE",
        "/v1/installations/{name}",
        RouteId::DeleteInstallation,
    ),
    (
        "GET",
        "/v1/installations/{name}/logs",
        RouteId::InstallationLogs,
    ),
    (
        "GET",
        "/v1/installations/{name}/tools",
        RouteId::InstallationTools,
    ),
    (
        "GET",
        "/v1/installations/{name}/callers",
        RouteId::ListCallers,
    ),
    (
        "PUT",
        "/v1/installations/{name}/callers",
        RouteId::SetCaller,
    ),
    (
        "DELETE",
        "/v1/installations/{name}/callers",
        RouteId::UnsetCaller,
    ),
    ("GET", "/v1/gateways", RouteId::ListGateways),
    ("POST", "/v1/gateways", RouteId::CreateGateway),
    ("GET", "/v1/gateways/{name}", RouteId::GetGateway),
    ("PUT", "/v1/gateways/{name}", RouteId::ReplaceGateway),
    ("DELETE", "/v1/gateways/{name}", RouteId::DeleteGateway),
    ("POST", "/v1/gateways/{name}/assignments", RouteId::Assign),
    (
        "DELETE",
        "/v1/gateways/{name}/assignments/{entry}",
        RouteId::Unassign,
    ),
    ("GET", "/v1/audit", RouteId::Audit),
    ("GET", "/v1/snapshot", RouteId::Snapshot),
    ("POST", "/v1/mcp", RouteId::Mcp),
];

/// Why a request matched no route.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// No path matches.
    NotFound,
    /// The path matches, the method does not.
    MethodNotAllowed,
}

/// The route of `method path` and the path's `{...}` segments in order.
pub fn find<'p>(method: &str, path: &'p str) -> Result<(RouteId, Vec<&'p str>), NoRoute> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut path_matched = false;
    for (m, pattern, id) in ROUTES {
        let parts: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let ok = parts.iter().zip(&segments).all(|(p, s)| {
            if p.starts_with('{') {
                params.push(*s);
                !s.is_empty()
            } else {
                p == s
            }
        });
        if ok {
            if *m == method {
                return Ok((*id, params));
            }
            path_matched = true;
        }
    }
    Err(if path_matched {
        NoRoute::MethodNotAllowed
    } else {
        NoRoute::NotFound
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_in_openapi_json() {
        let spec: serde_json::Value =
            serde_json::from_str(include_str!("../../openapi.json")).expect("openapi.json parses");
        assert_eq!(spec["openapi"], "3.1.0");
        for (method, path, id) in ROUTES {
            let op = &spec["paths"][path][method.to_lowercase()];
            assert!(
                op.is_object(),
                "{method} {path} ({id:?}) is not in openapi.json"
            );
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
        let described: usize = spec["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(
            described,
            ROUTES.len(),
            "openapi.json describes a route the router lacks"
        );
    }

    #[test]
    fn paths_match_with_their_parameters_and_wrong_methods_are_told_apart() {
        assert_eq!(
            find("DELETE", "/v1/gateways/team/assignments/gh__x"),
            Ok((RouteId::Unassign, vec!["team", "gh__x"]))
        );
        assert_eq!(
            find("PATCH", "/v1/templates/x"),
            Err(NoRoute::MethodNotAllowed)
        );
        assert_eq!(find("GET", "/v1/templates/"), Err(NoRoute::NotFound));
        assert_eq!(find("GET", "/v2"), Err(NoRoute::NotFound));
    }
}

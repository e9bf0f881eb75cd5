use super::*;
use crate::catalog::conflicts::Kind;
use serde_json::json;
use sluice_config::{GatewayConfig, GatewayName, ServerName};

fn server(tools: &[&str], stateful: bool) -> Option<Arc<ServerCatalog>> {
    Some(Arc::new(ServerCatalog {
        modern: false,
        modern_list_changes: false,
        handshake: true,
        modern_resource_subscribe: false,
        resource_tools: Default::default(),
        protocol_version: "2025-11-25".into(),
        stateful,
        capabilities: json!({ "tools": {} }),
        tools: tools
            .iter()
            .map(|t| json!({ "name": t, "inputSchema": { "type": "object" } }))
            .collect(),
        prompts: vec![json!({ "name": "greet" })],
        resources: vec![
            json!({ "uri": format!("note://{}/readme", tools.len()), "name": "readme" }),
        ],
        resource_templates: vec![
            json!({ "uriTemplate": format!("tmpl{}://{{id}}", tools.len()), "name": "t" }),
        ],
    }))
}

fn gateway(servers: &[&str], tools: &[&str]) -> GatewayConfig {
    GatewayConfig {
        name: GatewayName::new("dev").expect("valid gateway name"),
        servers: servers
            .iter()
            .map(|s| ServerName::new(s).expect("valid server name"))
            .collect(),
        tools: tools.iter().map(|t| t.to_string()).collect(),
        prefix: true,
        auth: None,
        tools_mode: Default::default(),
        policies: Vec::new(),
        policy_default: sluice_config::Effect::Allow,
        limits: Default::default(),
        builtin_tools: false,
    }
}

fn metrics() -> Arc<crate::metrics::GatewayMetrics> {
    crate::metrics::Metrics::new(true).gateway("dev")
}

fn index() -> HashMap<String, ServerIdx> {
    HashMap::from([("github".to_owned(), 0), ("files".to_owned(), 1)])
}

fn page_json(pages: &ListPages, cursor: Option<&str>) -> Value {
    serde_json::from_slice(pages.page(cursor).expect("page exists")).expect("page is JSON")
}

#[test]
fn tools_are_prefixed_and_routed_to_their_server_with_the_upstream_name() {
    let servers = vec![
        server(&["create_issue", "search"], false),
        server(&["read"], true),
    ];
    let cat = GatewayCatalog::build(
        &gateway(&["github", "files"], &[]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    let listed = page_json(&cat.tools, None);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["github__create_issue", "github__search", "files__read"]
    );
    assert!(listed.get("nextCursor").is_none());
    let route = cat.route_tool("github__search").expect("routed");
    assert_eq!(route.server, 0);
    assert_eq!(&*route.upstream_literal, br#""search""#);
    assert_eq!(cat.route_tool("files__read").map(|r| r.server), Some(1));
    assert!(cat.route_tool("search").is_none());
    assert!(cat.route_tool("files__search").is_none());
}

#[test]
fn pages_chain_through_next_cursor_and_bad_cursors_are_refused() {
    let tools: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    let tools: Vec<&str> = tools.iter().map(String::as_str).collect();
    let servers = vec![server(&tools, false), None];
    let cat = GatewayCatalog::build(
        &gateway(&["github"], &[]),
        &index(),
        &servers,
        2,
        None,
        metrics(),
    );
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = page_json(&cat.tools, cursor.as_deref());
        for t in page["tools"].as_array().unwrap() {
            seen.push(t["name"].as_str().unwrap().to_owned());
        }
        match page.get("nextCursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[4], "github__t4");
    assert_eq!(cat.tools.page(Some("99")), Err(BadCursor));
    assert_eq!(cat.tools.page(Some("x")), Err(BadCursor));
}

#[test]
fn allow_list_picks_single_tools_without_prompts_or_resources() {
    let servers = vec![
        server(&["create_issue", "search"], false),
        server(&["read"], true),
    ];
    let cat = GatewayCatalog::build(
        &gateway(&["files"], &["github__search"]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert!(cat.route_tool("github__search").is_some());
    assert!(cat.route_tool("github__create_issue").is_none());
    assert_eq!(cat.tools.len(), 2);
    assert_eq!(cat.prompts.len(), 1, "prompts only from whole servers");
    assert!(cat.route_prompt("files__greet").is_some());
    assert_eq!(cat.servers, vec![1, 0]);
}

#[test]
fn a_server_without_a_catalog_contributes_nothing() {
    let servers = vec![None, server(&["read"], true)];
    let cat = GatewayCatalog::build(
        &gateway(&["github", "files"], &[]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert_eq!(cat.tools.len(), 1);
    let empty = GatewayCatalog::build(
        &gateway(&["github"], &[]),
        &index(),
        &[None, None],
        100,
        None,
        metrics(),
    );
    assert_eq!(page_json(&empty.tools, None), json!({ "tools": [] }));
}

#[test]
fn resources_route_by_listed_uri_then_template_prefix() {
    let servers = vec![server(&["a"], false), server(&["b", "c"], false)];
    let cat = GatewayCatalog::build(
        &gateway(&["github", "files"], &[]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert_eq!(cat.route_resource("note://1/readme"), Some(0));
    assert_eq!(cat.route_resource("note://2/readme"), Some(1));
    assert_eq!(cat.route_resource("tmpl2://42"), Some(1));
    assert_eq!(
        cat.route_resource("unknown://x"),
        None,
        "ambiguous owner is refused"
    );
    let one = GatewayCatalog::build(
        &gateway(&["files"], &[]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert_eq!(
        one.route_resource("unknown://x"),
        Some(1),
        "the only resource server owns it"
    );
}

#[test]
fn similar_tool_names_are_suggested() {
    let servers = vec![server(&["create_issue", "search"], false), None];
    let cat = GatewayCatalog::build(
        &gateway(&["github"], &[]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert_eq!(
        cat.similar_tools("github__serch", 3, None),
        vec!["github__search"]
    );
    assert!(
        cat.similar_tools("zzzzzzzzzzzzzzzzzzzz", 3, None)
            .is_empty()
    );
}

#[test]
fn rules_filter_the_tool_list_once_per_distinct_outcome() {
    use sluice_config::ToolRule;
    let rules = Rules::new(&[
        ToolRule {
            tools: vec!["github__*".into()],
            require: vec![("groups".into(), vec![json!("eng")])],
        },
        ToolRule {
            tools: vec!["files__read".into()],
            require: vec![],
        },
    ]);
    let servers = vec![
        server(&["create_issue", "search"], false),
        server(&["read", "write"], false),
    ];
    let cat = GatewayCatalog::build(
        &gateway(&["github", "files"], &[]),
        &index(),
        &servers,
        100,
        Some(&rules),
        metrics(),
    );
    let names = |pages: &ListPages| -> Vec<String> {
        page_json(pages, None)["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let eng = rules.grants(json!({"groups": ["eng"]}).as_object().unwrap());
    let other = rules.grants(json!({"groups": ["sales"]}).as_object().unwrap());
    let for_eng = cat.tools_for(eng).expect("rules filter");
    assert_eq!(
        names(&for_eng),
        ["github__create_issue", "github__search", "files__read"]
    );
    assert_eq!(names(&cat.tools_for(other).unwrap()), ["files__read"]);
    assert!(
        Arc::ptr_eq(&for_eng, &cat.tools_for(eng).unwrap()),
        "built once per outcome"
    );
    assert!(!cat.route_tool("files__write").unwrap().decision.allows(eng));
    assert_eq!(
        cat.similar_tools("github__serch", 3, Some(other)),
        Vec::<&str>::new(),
        "no suggestion names a tool the caller may not use"
    );
    let open = GatewayCatalog::build(
        &gateway(&["github"], &[]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert!(open.tools_for(eng).is_none(), "no rules: the shared pages");
}

/// A server catalog with these tool and prompt names, resource URIs and URI templates.
fn offering(
    tools: &[&str],
    prompts: &[&str],
    uris: &[&str],
    templates: &[&str],
) -> Option<Arc<ServerCatalog>> {
    Some(Arc::new(ServerCatalog {
        modern: false,
        modern_list_changes: false,
        handshake: true,
        modern_resource_subscribe: false,
        resource_tools: Default::default(),
        protocol_version: "2025-11-25".into(),
        stateful: false,
        capabilities: json!({ "tools": {}, "prompts": {}, "resources": {} }),
        tools: tools
            .iter()
            .map(|t| json!({ "name": t, "inputSchema": { "type": "object" } }))
            .collect(),
        prompts: prompts.iter().map(|p| json!({ "name": p })).collect(),
        resources: uris
            .iter()
            .map(|u| json!({ "uri": u, "name": u }))
            .collect(),
        resource_templates: templates
            .iter()
            .map(|t| json!({ "uriTemplate": t, "name": t }))
            .collect(),
    }))
}

fn bare(servers: &[&str], tools: &[&str]) -> GatewayConfig {
    GatewayConfig {
        prefix: false,
        ..gateway(servers, tools)
    }
}

fn names(pages: &ListPages, key: &str, field: &str) -> Vec<String> {
    page_json(pages, None)[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[field].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_gateway_without_prefixes_shows_and_routes_the_upstreams_own_names() {
    let servers = vec![
        offering(
            &["create_issue", "search"],
            &["triage"],
            &["gh://readme"],
            &[],
        ),
        offering(
            &["read"],
            &["summarise"],
            &["file:///a"],
            &["file:///{path}"],
        ),
    ];
    let cat = GatewayCatalog::build(
        &bare(&["github", "files"], &[]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert_eq!(
        names(&cat.tools, "tools", "name"),
        ["create_issue", "search", "read"]
    );
    let search = cat.route_tool("search").expect("bare name routed");
    assert_eq!(search.server, 0);
    assert_eq!(&*search.upstream_literal, br#""search""#);
    assert_eq!(cat.route_tool("read").map(|r| r.server), Some(1));
    assert!(
        cat.route_tool("github__search").is_none(),
        "no prefixed alias"
    );
    assert_eq!(
        names(&cat.prompts, "prompts", "name"),
        ["triage", "summarise"]
    );
    assert_eq!(cat.route_prompt("summarise").map(|r| r.server), Some(1));
    assert_eq!(cat.route_resource("gh://readme"), Some(0));
    assert_eq!(cat.route_resource("file:///b"), Some(1), "by template");
    assert!(cat.conflicts.is_empty());
}

#[test]
fn individually_listed_tools_of_a_gateway_without_prefixes_keep_their_names() {
    let servers = vec![
        offering(&["create_issue", "search"], &[], &[], &[]),
        offering(&["read", "search"], &[], &[], &[]),
    ];
    let cat = GatewayCatalog::build(
        &bare(&[], &["github__search", "files__read"]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert_eq!(names(&cat.tools, "tools", "name"), ["search", "read"]);
    assert_eq!(cat.route_tool("search").map(|r| r.server), Some(0));
    assert!(
        cat.conflicts.is_empty(),
        "files' own search is not selected"
    );
}

#[test]
fn names_two_servers_offer_are_withheld_from_a_gateway_without_prefixes_and_counted() {
    let root = crate::metrics::Metrics::new(true);
    let servers = vec![
        offering(
            &["create_issue", "search"],
            &["greet"],
            &["note://shared", "gh://own"],
            &["tmpl://{id}"],
        ),
        offering(
            &["search", "read"],
            &["greet", "summarise"],
            &["note://shared"],
            &["tmpl://{id}"],
        ),
    ];
    let cat = GatewayCatalog::build(
        &bare(&["github", "files"], &[]),
        &index(),
        &servers,
        100,
        None,
        root.gateway("dev"),
    );
    assert_eq!(names(&cat.tools, "tools", "name"), ["create_issue", "read"]);
    assert!(cat.route_tool("search").is_none(), "neither server gets it");
    assert_eq!(names(&cat.prompts, "prompts", "name"), ["summarise"]);
    assert!(cat.route_prompt("greet").is_none());
    assert_eq!(names(&cat.resources, "resources", "uri"), ["gh://own"]);
    assert_eq!(cat.route_resource("note://shared"), None);
    assert_eq!(cat.route_resource("gh://own"), Some(0));
    assert!(cat.resource_templates.is_empty());
    assert_eq!(
        cat.route_resource("tmpl://42"),
        None,
        "a withheld template's URIs go nowhere"
    );
    assert_eq!(
        cat.route_resource("other://x"),
        None,
        "two resource servers"
    );

    let found: Vec<(Kind, &str, Vec<&str>)> = cat
        .conflicts
        .list()
        .iter()
        .map(|c| {
            let servers = c.servers.iter().map(String::as_str).collect();
            (c.kind, c.name.as_str(), servers)
        })
        .collect();
    let both = vec!["github", "files"];
    assert_eq!(
        found,
        [
            (Kind::Tool, "search", both.clone()),
            (Kind::Prompt, "greet", both.clone()),
            (Kind::Resource, "note://shared", both.clone()),
            (Kind::ResourceTemplate, "tmpl://{id}", both.clone()),
        ]
    );
    let search = cat.withheld(Kind::Tool, "search").expect("explained");
    assert_eq!(search.servers_list(), "'github', 'files'");
    assert_eq!(
        cat.withheld(Kind::Resource, "tmpl://7").map(|c| c.kind),
        Some(Kind::ResourceTemplate),
        "a URI of a withheld template is explained by it"
    );
    assert!(cat.withheld(Kind::Tool, "read").is_none());
    assert!(
        root.render()
            .contains("sluice_catalog_conflicts{gateway=\"dev\"} 4"),
        "{}",
        root.render()
    );
    assert!(
        root.render()
            .contains("sluice_catalog_tools{gateway=\"dev\"} 2")
    );
}

#[test]
fn a_clash_goes_away_when_only_one_server_offers_the_name() {
    let clash = vec![
        offering(&["search"], &[], &[], &[]),
        offering(&["search"], &[], &[], &[]),
    ];
    let cfg = bare(&["github", "files"], &[]);
    let before = GatewayCatalog::build(&cfg, &index(), &clash, 100, None, metrics());
    assert_eq!(before.conflicts.len(), 1);
    let fixed = vec![
        offering(&["search"], &[], &[], &[]),
        offering(&["find"], &[], &[], &[]),
    ];
    let after = GatewayCatalog::build(&cfg, &index(), &fixed, 100, None, metrics());
    assert!(after.conflicts.is_empty());
    assert_eq!(after.route_tool("search").map(|r| r.server), Some(0));
}

#[test]
fn a_server_listing_a_name_twice_is_no_clash() {
    let servers = vec![offering(&["search", "search"], &[], &[], &[]), None];
    let cat = GatewayCatalog::build(
        &bare(&["github"], &[]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert!(cat.conflicts.is_empty());
    assert_eq!(cat.route_tool("search").map(|r| r.server), Some(0));
}

#[test]
fn prefixed_gateways_keep_the_first_server_of_a_shared_resource_uri() {
    let root = crate::metrics::Metrics::new(true);
    let servers = vec![
        offering(&["search"], &["greet"], &["note://shared"], &[]),
        offering(&["search"], &["greet"], &["note://shared"], &[]),
    ];
    let cat = GatewayCatalog::build(
        &gateway(&["github", "files"], &[]),
        &index(),
        &servers,
        100,
        None,
        root.gateway("dev"),
    );
    assert!(cat.conflicts.is_empty());
    assert_eq!(cat.tools.len(), 2);
    assert_eq!(cat.route_resource("note://shared"), Some(0), "first wins");
    assert_eq!(cat.resources.len(), 2, "both listed, as before");
    assert!(
        root.render()
            .contains("sluice_catalog_conflicts{gateway=\"dev\"} 0")
    );
}

/// A resources-only server after its fetch synthesised read-resource tools.
fn resources_only(mode: sluice_config::ResourceTools) -> Option<Arc<ServerCatalog>> {
    let mut cat = (*offering(&[], &[], &["docs://guide", "docs://logo"], &[])?).clone();
    cat.synthesise_resource_tools(mode);
    Some(Arc::new(cat))
}

#[test]
fn read_resource_tools_are_ordinary_prefixed_tools_routed_to_their_uri() {
    let servers = vec![None, resources_only(sluice_config::ResourceTools::Auto)];
    let cat = GatewayCatalog::build(
        &gateway(&["files"], &[]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert_eq!(
        names(&cat.tools, "tools", "name"),
        ["files__read_docs_guide", "files__read_docs_logo"]
    );
    let route = cat.route_tool("files__read_docs_guide").expect("routed");
    assert_eq!(route.server, 1);
    assert_eq!(route.read_uri.as_deref(), Some(&br#""docs://guide""#[..]));
    // The resources themselves stay listed and readable.
    assert_eq!(cat.route_resource("docs://logo"), Some(1));

    // Assignable one by one like any tool.
    let one = GatewayCatalog::build(
        &gateway(&[], &["files__read_docs_logo"]),
        &index(),
        &servers,
        100,
        None,
        metrics(),
    );
    assert_eq!(
        names(&one.tools, "tools", "name"),
        ["files__read_docs_logo"]
    );
    assert!(one.route_tool("files__read_docs_guide").is_none());

    // Off: none; a real tool keeps its plain route.
    let off = vec![None, resources_only(sluice_config::ResourceTools::Off)];
    let cat = GatewayCatalog::build(
        &gateway(&["files"], &[]),
        &index(),
        &off,
        100,
        None,
        metrics(),
    );
    assert!(cat.tools.is_empty());
    let plain = vec![server(&["read"], false), None];
    let cat = GatewayCatalog::build(
        &gateway(&["github"], &[]),
        &index(),
        &plain,
        100,
        None,
        metrics(),
    );
    assert!(cat.route_tool("github__read").unwrap().read_uri.is_none());
}

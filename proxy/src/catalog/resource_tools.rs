//! Synthesised read-resource tools (`servers[].resource_tools`) in the proxy.
//!
//! When a server qualifies, each resource it lists becomes a tool of that server, added to
//! its fetched catalog once per fetch ([`super::ServerCatalog::synthesise_resource_tools`]),
//! so from there on they are ordinary tools: prefixed, listed, assignable, ruled, limited,
//! searchable in lazy mode; a call is turned into a `resources/read` of the resource's URI
//! ([`crate::gateway::resource_call`]).
//!
//! The naming (slug, suffixes for clashes, the bound) is [`sluice_config::resource_tools`],
//! shared with the control plane's tool discovery so that both show the same names; this
//! module re-exports it, and its tests pin the names the proxy serves.

pub use sluice_config::resource_tools::{
    MAX_RESOURCE_TOOLS, MAX_SLUG_LEN, READ_PREFIX, Synthesised, qualifies, slug, synthesise,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use sluice_config::ResourceTools;

    fn resource(name: &str, uri: &str) -> Value {
        json!({ "name": name, "uri": uri })
    }

    #[test]
    fn slugs_are_lowercase_alphanumeric_runs_joined_by_underscores() {
        assert_eq!(slug("User Guide"), "user_guide");
        assert_eq!(slug("  --Read.Me!! "), "read_me");
        assert_eq!(slug("logo.png"), "logo_png");
        assert_eq!(slug("Ünïcode naïve"), "n_code_na_ve");
        assert_eq!(slug("日本"), "resource");
        assert_eq!(slug(""), "resource");
        assert_eq!(slug("note://docs/a_b"), "note_docs_a_b");
        let long = "x".repeat(200);
        assert_eq!(slug(&long).len(), MAX_SLUG_LEN);
        let cut = format!("{}-{}", "a".repeat(MAX_SLUG_LEN - 1), "b");
        assert_eq!(slug(&cut), "a".repeat(MAX_SLUG_LEN - 1), "no trailing _");
    }

    #[test]
    fn collisions_get_suffixes_in_list_order_and_never_take_a_real_tools_name() {
        let tools = vec![json!({ "name": "read_guide" })];
        let resources = vec![
            resource("Guide", "docs://a"),
            resource("guide", "docs://b"),
            resource("GUIDE!", "docs://c"),
            resource("guide 2", "docs://d"),
        ];
        let made = synthesise(&tools, &resources);
        let names: Vec<&str> = made
            .tools
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "read_guide_2",
                "read_guide_3",
                "read_guide_4",
                "read_guide_2_2"
            ]
        );
        assert_eq!(made.uris["read_guide_2"], "docs://a");
        assert_eq!(made.uris["read_guide_2_2"], "docs://d");
        // The same input always gives the same names.
        assert_eq!(synthesise(&tools, &resources), made);
    }

    #[test]
    fn definitions_read_only_with_an_empty_schema_and_the_resources_description() {
        let made = synthesise(
            &[],
            &[
                json!({ "uri": "docs://guide", "name": "Guide", "title": "The guide", "description": "How to." }),
                json!({ "uri": "docs://bare" }),
                json!({ "name": "no uri" }),
            ],
        );
        assert_eq!(made.tools.len(), 2);
        assert_eq!(
            made.tools[0],
            json!({
                "name": "read_guide",
                "title": "Read The guide",
                "description": "Read the resource docs://guide: How to.",
                "inputSchema": { "type": "object", "properties": {} },
                "annotations": { "readOnlyHint": true },
            })
        );
        assert_eq!(made.tools[1]["name"], "read_docs_bare");
        assert_eq!(
            made.tools[1]["description"],
            "Read the resource docs://bare"
        );
    }

    #[test]
    fn at_most_the_bound_become_tools() {
        let resources: Vec<Value> = (0..MAX_RESOURCE_TOOLS + 5)
            .map(|i| resource(&format!("r{i}"), &format!("docs://{i}")))
            .collect();
        let made = synthesise(&[], &resources);
        assert_eq!(made.tools.len(), MAX_RESOURCE_TOOLS);
        assert_eq!(made.skipped, 5);
    }

    #[test]
    fn modes_decide_which_servers_qualify() {
        let tool = [json!({ "name": "t" })];
        let res = [resource("r", "docs://r")];
        assert!(qualifies(ResourceTools::Auto, &[], &res));
        assert!(!qualifies(ResourceTools::Auto, &tool, &res));
        assert!(!qualifies(ResourceTools::Auto, &[], &[]));
        assert!(qualifies(ResourceTools::On, &tool, &res));
        assert!(!qualifies(ResourceTools::Off, &[], &res));
    }
}

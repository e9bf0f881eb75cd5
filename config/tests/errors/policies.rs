//! `tools_mode`, `[[gateways.policies]]`, `policy_default` and `[gateways.limits]`: each
//! mistake reported at its place, so a typo cannot silently let calls through.

use crate::errors;

const HEAD: &str = "[[servers]]\nname = \"gh\"\nurl = \"http://h/mcp\"\n[[gateways]]\nname = \"g\"\nservers = [\"gh\"]\n";

fn messages(extra: &str) -> Vec<String> {
    errors(&format!("{HEAD}{extra}"))
        .into_iter()
        .map(|(_, _, m)| m)
        .collect()
}

fn has(m: &[String], needle: &str) {
    assert!(
        m.iter().any(|e| e.contains(needle)),
        "{needle:?} not in {m:#?}"
    );
}

#[test]
fn modes_and_effects_are_spelt_out() {
    let m = messages(
        "tools_mode = \"lazzy\"\npolicy_default = \"block\"\n\
         [[gateways.policies]]\nname = \"p\"\ntools = [\"*\"]\neffect = \"require_approval\"\n",
    );
    has(
        &m,
        "gateways.tools_mode must be \"direct\" or \"lazy\", not \"lazzy\"",
    );
    has(
        &m,
        "gateways.policy_default must be \"allow\" or \"deny\", not \"block\"",
    );
    has(&m, "\"require_approval\" is not supported yet");
}

#[test]
fn policies_need_a_unique_name_patterns_and_an_effect() {
    let m = messages(
        "[[gateways.policies]]\nname = \"p\"\ntools = [\"gh__*\"]\neffect = \"deny\"\n\
         [[gateways.policies]]\nname = \"p\"\ntools = [\"*\"]\neffect = \"allow\"\n\
         [[gateways.policies]]\nname = \"no tools\"\neffect = \"deny\"\n\
         [[gateways.policies]]\nname = \"q\"\ntools = []\n\
         [[gateways.policies]]\nname = \"r\"\ntools = [\"*\"]\neffect = \"deny\"\nclaim = {}\n",
    );
    has(&m, "policy name \"p\" is used twice in this gateway");
    has(&m, "must be 1 to 64 of A-Z a-z 0-9 - _ .");
    has(&m, "missing the required key \"tools\"");
    has(&m, "must name at least one tool pattern");
    has(&m, "missing the required key \"effect\"");
    has(
        &m,
        "unknown key \"claim\" in [[gateways.policies]]; did you mean \"claims\"?",
    );
}

#[test]
fn argument_conditions_are_checked() {
    let m = messages(
        "[[gateways.policies]]\nname = \"p\"\ntools = [\"*\"]\neffect = \"deny\"\narguments = [\n\
         { pointer = \"path\", prefix = \"/etc\" },\n\
         { pointer = \"/a~2\", equals = 1 },\n\
         { pointer = \"/x\" },\n\
         { pointer = \"/x\", prefix = \"a\", regex = \"b\" },\n\
         { pointer = \"/x\", regex = \"(unclosed\" },\n\
         { pointer = \"/x\", min = 10, max = 1 },\n\
         { pointer = \"/x\", min = \"ten\" },\n\
         { pointer = \"/x\", prefx = \"a\" },\n\
         \"/x\",\n]\n",
    );
    has(&m, "pointer \"path\" must be a JSON pointer");
    has(&m, "pointer \"/a~2\" must be a JSON pointer");
    has(
        &m,
        "needs exactly one test: equals, prefix, regex, or min and/or max",
    );
    has(&m, "(found prefix, regex)");
    has(&m, "regex \"(unclosed\" is not a valid regular expression");
    has(&m, "min 10 is above max 1");
    has(&m, "min must be a number, not a string");
    has(&m, "did you mean \"prefix\"?");
    has(&m, "must be a table such as");
}

#[test]
fn limits_are_rates_per_period_with_a_burst() {
    let m = messages(
        "[gateways.limits]\ngateway = \"50 per second\"\ncaller = { rate = \"0/s\" }\n\
         tool = { burst = 5 }\ncallers = \"1/s\"\n",
    );
    has(
        &m,
        "gateways.limits.gateway: \"50 per second\" is not a rate",
    );
    has(&m, "gateways.limits.caller: \"0/s\" is not a rate");
    has(
        &m,
        "gateways.limits.tool is missing the required key \"rate\"",
    );
    has(
        &m,
        "unknown key \"callers\" in [gateways.limits]; did you mean \"caller\"?",
    );
    let m = messages("[gateways.limits]\ntool = { rate = \"5/s\", burst = 0 }\n");
    has(&m, "burst must be between 1 and 1000000000");
}

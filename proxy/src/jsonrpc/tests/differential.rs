//! Differential test: `scan` against `serde_json` (syntax) and the serde-based reference
//! (envelope), over the seed corpus and tens of thousands of generated and mutated bodies.

use super::super::*;
use super::generate::{self, Rng};
use super::reference::{self, Expected};

const CASES: usize = 40_000;
const DEPTH: usize = 100; // below serde_json's own limit of 127 levels, so both limits never differ

fn slice(body: &[u8], span: Option<Span>) -> Option<&str> {
    span.map(|s| std::str::from_utf8(s.slice(body).expect("span inside body")).expect("utf8"))
}

fn field<'a>(body: &'a [u8], f: &Option<StrField<'_>>) -> Option<(&'a str, String)> {
    f.as_ref().map(|f| {
        (
            slice(body, Some(f.span)).expect("span"),
            f.value.clone().into_owned(),
        )
    })
}

/// Everything `scan` says must agree with the reference.
fn agree(body: &[u8], ours: &Result<Scanned<'_>, ScanError>, expected: &Expected<'_>) {
    let shown = String::from_utf8_lossy(body);
    match ours {
        Ok(Scanned::Batch) => assert!(expected.batch, "{shown}: batch"),
        Ok(Scanned::Single(env)) => {
            assert_eq!(expected.error, None, "{shown}");
            assert_eq!(Some(env.kind), expected.kind, "{shown}");
            assert_eq!(env.method.as_deref(), expected.method.as_deref(), "{shown}");
            assert_eq!(slice(body, env.id), expected.id, "{shown}");
            assert_eq!(slice(body, env.params), expected.params, "{shown}");
            assert_eq!(field(body, &env.name), expected.name, "{shown}");
            assert_eq!(field(body, &env.uri), expected.uri, "{shown}");
            assert_eq!(
                slice(body, env.progress_token),
                expected.progress_token,
                "{shown}"
            );
            assert_eq!(slice(body, env.meta), expected.meta, "{shown}");
            assert_eq!(slice(body, env.result), expected.result, "{shown}");
            assert_eq!(slice(body, env.error), expected.error_value, "{shown}");
            splice_round_trip(body, env);
        }
        Err(error) => assert_eq!(Some(error), expected.error.as_ref(), "{shown}"),
    }
}

/// Renaming the tool through a splice must equal renaming it in a parsed `Value`.
fn splice_round_trip(body: &[u8], env: &Envelope<'_>) {
    let Some(name) = &env.name else { return };
    let new_name = format!("{}\"\\\u{1}é/{}", name.value.len(), name.value);
    let spliced = replace_span(body, name.span, &json_string_literal(&new_name)).expect("splice");
    let mut expected: serde_json::Value = serde_json::from_slice(body).expect("parsed before");
    expected["params"]["name"] = serde_json::Value::String(new_name.clone());
    let actual: serde_json::Value = serde_json::from_slice(&spliced).expect("spliced body parses");
    assert_eq!(actual, expected);
    let Ok(Scanned::Single(again)) = scan(&spliced, DEPTH) else {
        panic!("spliced body scans")
    };
    assert_eq!(again.name.map(|n| n.value.into_owned()), Some(new_name));
    assert_eq!(
        again.id.and_then(|s| s.slice(&spliced)),
        env.id.and_then(|s| s.slice(body))
    );
}

/// Compares one body; returns whether `serde_json` accepted it.
fn check(body: &[u8]) -> bool {
    let ours = scan(body, DEPTH);
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(_) => {
            let text = std::str::from_utf8(body).expect("serde_json accepted it, so UTF-8");
            agree(body, &ours, &reference::expect(text));
            true
        }
        // RFC 8259 allows numbers beyond f64; serde_json's Value does not. Not a routing risk.
        Err(e) if e.to_string().contains("number out of range") => false,
        Err(e) => {
            assert!(
                matches!(ours, Err(ScanError::Syntax { .. })),
                "{:?}: serde_json says {e}, scan says {ours:?}",
                String::from_utf8_lossy(body)
            );
            false
        }
    }
}

#[test]
fn scan_agrees_with_serde_json_on_seeds_and_generated_bodies() {
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    let mut accepted = 0;
    let mut kinds = [0usize; 4];
    let mut total = 0;
    let mut corpus = generate::seed_corpus();
    for _ in 0..CASES {
        let mut body = generate::message(&mut rng);
        if rng.chance(35) {
            generate::mutate(&mut rng, &mut body);
        }
        corpus.push(body);
    }
    for body in &corpus {
        total += 1;
        if check(body) {
            accepted += 1;
        }
        let slot = match scan(body, DEPTH) {
            Ok(Scanned::Single(env)) if env.name.is_some() => 0,
            Ok(_) => 1,
            Err(ScanError::Syntax { .. }) => 2,
            Err(_) => 3,
        };
        kinds[slot] += 1;
    }
    // The generator must exercise every outcome, or the test proves little.
    eprintln!("{total} bodies, {accepted} valid JSON; named/other/syntax/refused = {kinds:?}");
    assert!(kinds.iter().all(|&k| k > total / 50), "{kinds:?}");
}

#[test]
fn scan_agrees_with_serde_json_on_truncations_and_single_byte_edits() {
    for body in generate::seed_corpus() {
        for end in 0..=body.len() {
            check(body.get(..end).unwrap_or_default());
        }
        for at in 0..body.len() {
            for &b in b"{}[],:\"\\ 0e-.u\x00\xff" {
                let mut edited = body.clone();
                edited[at] = b;
                check(&edited);
            }
        }
    }
}

//! Ranking quality of lazy mode's `search_tools` on a fixed evaluation set: 1,000 realistic
//! tool definitions from 71 services with labelled queries phrased as an agent would
//! (`benches/fixtures/search/`, made by its `gen_tools.py`, which did not know the ranker).
//! Prints recall@5 and asserts a floor, so a change that degrades ranking fails here.

use serde_json::Value;
use sluice_proxy::catalog::search::SearchIndex;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/benches/fixtures/search/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (kind, queries, recall@k, hit rate@k) per query kind and overall.
fn evaluate(k: usize) -> Vec<(String, usize, f64, f64)> {
    let tools = fixture("tools-1000.json");
    let tools = tools.as_array().expect("an array of tools");
    assert_eq!(tools.len(), 1000);
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let index = SearchIndex::build(tools);
    let queries = fixture("queries.json");
    let mut by_kind: std::collections::BTreeMap<String, (usize, f64, f64)> = Default::default();
    for q in queries.as_array().expect("an array of queries") {
        let relevant: Vec<&str> = q["relevant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let found: Vec<&str> = index
            .search(q["query"].as_str().unwrap(), k, |_| true)
            .into_iter()
            .map(|i| names[i])
            .collect();
        let hits = relevant.iter().filter(|r| found.contains(r)).count();
        let recall = hits as f64 / relevant.len() as f64;
        let hit = f64::from(u8::from(hits > 0));
        for kind in ["all", q["kind"].as_str().unwrap_or("unlabelled")] {
            let e = by_kind.entry(kind.to_owned()).or_default();
            e.0 += 1;
            e.1 += recall;
            e.2 += hit;
        }
    }
    by_kind
        .into_iter()
        .map(|(kind, (n, r, h))| (kind, n, r / n as f64, h / n as f64))
        .collect()
}

#[test]
fn recall_at_5_on_the_fixed_evaluation_set() {
    let results = evaluate(5);
    for (kind, n, recall, hit) in &results {
        println!("{kind:>10}: {n:>3} queries  recall@5 {recall:.3}  hit@5 {hit:.3}");
    }
    let all = results.iter().find(|r| r.0 == "all").expect("overall");
    assert!(all.2 >= 0.70, "recall@5 fell to {:.3}", all.2);
}

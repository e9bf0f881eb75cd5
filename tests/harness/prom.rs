//! Reading `/metrics` with a Prometheus text parser (the `prometheus-parse` crate), not string
//! matching.

use prometheus_parse::{Scrape, Value as Sample};

use super::Sluice;

/// One parsed scrape of the gateway's `/metrics`.
pub async fn scrape(sluice: &Sluice) -> Scrape {
    let text = reqwest::get(format!("http://{}/metrics", sluice.admin))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition format")
}

/// The sum of `name`'s samples whose labels include `labels` (and, when `exact`, no others);
/// a histogram counts its observations. 0 when none.
pub fn sum(s: &Scrape, name: &str, labels: &[(&str, &str)], exact: bool) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| {
            (!exact || x.labels.len() == labels.len())
                && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
        })
        .map(|x| match &x.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Sample::Summary(_) => 0.0,
        })
        .sum()
}

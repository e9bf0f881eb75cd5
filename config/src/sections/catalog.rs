//! `[catalog]`: how often upstream tool lists are refreshed, how they are paged to clients,
//! and how long a client's `initialize` may wait for upstreams.

use std::time::Duration;

use toml::de::DeTable;

use crate::CatalogConfig;
use crate::reader::Reader;

const KEYS: &[&str] = &["refresh", "page_size", "init_timeout"];
const P: &str = "catalog";

pub(super) fn read(r: &mut Reader<'_>, t: &DeTable<'_>) -> CatalogConfig {
    r.check_keys(t, KEYS, "[catalog]");
    let d = CatalogConfig::default();
    CatalogConfig {
        refresh: r
            .duration(
                t,
                "refresh",
                P,
                Duration::from_secs(1)..=Duration::from_secs(30 * 24 * 60 * 60),
            )
            .unwrap_or(d.refresh),
        page_size: r
            .count(t, "page_size", P, 1..=10_000)
            .unwrap_or(d.page_size),
        init_timeout: r
            .duration(
                t,
                "init_timeout",
                P,
                Duration::from_millis(10)..=Duration::from_secs(300),
            )
            .unwrap_or(d.init_timeout),
    }
}

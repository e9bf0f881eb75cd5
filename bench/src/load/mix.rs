//! The request mix: which MCP request a worker sends next.
//!
//! Weights become a fixed, evenly interleaved cycle (smooth weighted round robin, as nginx
//! balances upstreams), so a run of any length sends the mix in proportion without a random
//! number generator on the hot path, and two runs send the same sequence.

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// One kind of request the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Call,
    List,
    Ping,
}

/// Relative weights of `tools/call`, `tools/list` and `ping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    pub call: u32,
    pub list: u32,
    pub ping: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            call: 1,
            list: 0,
            ping: 0,
        }
    }
}

impl Mix {
    /// Parses `call=98,list=1,ping=1` (missing kinds weigh 0).
    pub fn parse(text: &str) -> Result<Self> {
        let mut mix = Mix {
            call: 0,
            list: 0,
            ping: 0,
        };
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (kind, weight) = part
                .split_once('=')
                .ok_or_else(|| anyhow!("'{part}': expected KIND=WEIGHT"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| anyhow!("'{part}': the weight is not a whole number"))?;
            match kind.trim() {
                "call" => mix.call = weight,
                "list" => mix.list = weight,
                "ping" => mix.ping = weight,
                other => bail!("'{other}': the mix knows call, list and ping"),
            }
        }
        mix.cycle()?;
        Ok(mix)
    }

    /// The cycle of requests, `call + list + ping` long (after dividing by the common factor).
    pub fn cycle(&self) -> Result<Vec<Op>> {
        let weights = [
            (Op::Call, self.call),
            (Op::List, self.list),
            (Op::Ping, self.ping),
        ];
        let gcd = weights
            .iter()
            .map(|&(_, w)| w)
            .filter(|&w| w > 0)
            .reduce(gcd)
            .ok_or_else(|| anyhow!("the request mix has no weight above 0"))?;
        let weights: Vec<(Op, i64)> = weights
            .iter()
            .map(|&(op, w)| (op, i64::from(w / gcd)))
            .collect();
        let total: i64 = weights.iter().map(|&(_, w)| w).sum();
        if total > 10_000 {
            bail!("the request mix's weights reduce to {total} slots; keep them under 10,000");
        }
        let mut current = [0i64; 3];
        let mut cycle = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, &(_, w)) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let best = (0..3)
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .expect("three candidates");
            current[best] -= total;
            cycle.push(weights[best].0);
        }
        Ok(cycle)
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_keeps_proportions_and_spreads_rare_requests() {
        let cycle = Mix::parse("call=98,list=1,ping=1")
            .unwrap()
            .cycle()
            .unwrap();
        assert_eq!(cycle.len(), 100);
        assert_eq!(cycle.iter().filter(|&&o| o == Op::Call).count(), 98);
        let list_at = cycle.iter().position(|&o| o == Op::List).unwrap();
        let ping_at = cycle.iter().position(|&o| o == Op::Ping).unwrap();
        // Neither is bunched at the start or next to the other.
        assert!(list_at > 10 && ping_at > 10, "{list_at} {ping_at}");
        assert!(list_at.abs_diff(ping_at) >= 20, "{list_at} {ping_at}");

        let even = Mix::parse("call=2,list=2").unwrap().cycle().unwrap();
        assert_eq!(even, [Op::Call, Op::List]);
    }

    #[test]
    fn bad_mixes_are_refused_with_the_reason() {
        for (text, says) in [
            ("call=0", "no weight"),
            ("calls=1", "knows call"),
            ("call", "KIND=WEIGHT"),
            ("call=-1", "whole number"),
        ] {
            let err = Mix::parse(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}

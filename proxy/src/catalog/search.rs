//! Ranking a gateway's tools for `search_tools` (lazy mode): BM25 over each tool's name,
//! description and parameter names and descriptions, with the fields weighted (a word in the
//! name counts most). The inverted index is built with the catalog, off the request path; a
//! search tokenises the query, walks the postings of its terms and keeps the best few. Query
//! words that are no term of the index match the terms they begin (`calend` → `calendar`) at
//! a reduced weight, so a partial word still finds something.

use std::collections::HashMap;

use serde_json::Value;

/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;
/// Field weights: name, description, parameter name, parameter description.
const W_NAME: f32 = 3.0;
const W_DESCRIPTION: f32 = 1.0;
const W_PARAM: f32 = 1.5;
const W_PARAM_DESCRIPTION: f32 = 0.5;
/// Weight of a term reached by prefix instead of exactly.
const PREFIX_WEIGHT: f32 = 0.5;
/// Shortest query word expanded by prefix.
const MIN_PREFIX: usize = 3;
/// Most terms one prefix expands to.
const MAX_EXPANSION: usize = 16;

/// Words too common to rank by.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "any", "are", "as", "at", "be", "by", "can", "do", "for", "from", "i", "if",
    "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "please", "some", "that",
    "the", "their", "this", "to", "us", "we", "with", "you", "your",
];

/// An inverted index over a list of tools (by position).
#[derive(Debug, Default)]
pub struct SearchIndex {
    /// Term → postings: (tool, BM25 weight of the term in that tool, before IDF).
    postings: HashMap<Box<str>, Vec<(u32, f32)>>,
    /// Every term, sorted, for prefix expansion.
    sorted_terms: Vec<Box<str>>,
    docs: usize,
}

impl SearchIndex {
    /// Indexes tool definitions (`name`, `description`, `inputSchema.properties`).
    pub fn build(tools: &[Value]) -> Self {
        let mut freqs: Vec<HashMap<String, f32>> = Vec::with_capacity(tools.len());
        let mut lengths = Vec::with_capacity(tools.len());
        for tool in tools {
            let mut tf: HashMap<String, f32> = HashMap::new();
            let mut len = 0.0;
            let mut add = |text: &str, weight: f32| {
                for term in tokens(text) {
                    *tf.entry(term).or_default() += weight;
                    len += weight;
                }
            };
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                add(name, W_NAME);
            }
            if let Some(title) = tool.get("title").and_then(Value::as_str) {
                add(title, W_NAME);
            }
            if let Some(d) = tool.get("description").and_then(Value::as_str) {
                add(d, W_DESCRIPTION);
            }
            if let Some(props) = tool
                .pointer("/inputSchema/properties")
                .and_then(Value::as_object)
            {
                for (param, schema) in props {
                    add(param, W_PARAM);
                    if let Some(d) = schema.get("description").and_then(Value::as_str) {
                        add(d, W_PARAM_DESCRIPTION);
                    }
                }
            }
            freqs.push(tf);
            lengths.push(len);
        }
        let avg = if lengths.is_empty() {
            1.0
        } else {
            (lengths.iter().sum::<f32>() / lengths.len() as f32).max(1.0)
        };
        let mut postings: HashMap<Box<str>, Vec<(u32, f32)>> = HashMap::new();
        for (doc, tf) in freqs.into_iter().enumerate() {
            let norm = K1 * (1.0 - B + B * lengths[doc] / avg);
            for (term, f) in tf {
                let w = f * (K1 + 1.0) / (f + norm);
                postings
                    .entry(term.into_boxed_str())
                    .or_default()
                    .push((doc as u32, w));
            }
        }
        let mut sorted_terms: Vec<Box<str>> = postings.keys().cloned().collect();
        sorted_terms.sort_unstable();
        SearchIndex {
            postings,
            sorted_terms,
            docs: tools.len(),
        }
    }

    /// The positions of the `limit` best tools for `query` among those `visible`, best first;
    /// ties go to the earlier tool. Tools sharing no word with the query are not returned.
    pub fn search(&self, query: &str, limit: usize, visible: impl Fn(usize) -> bool) -> Vec<usize> {
        if self.docs == 0 || limit == 0 {
            return Vec::new();
        }
        let mut scores = vec![0f32; self.docs];
        let mut seen: Vec<String> = Vec::new();
        for term in tokens(query) {
            if seen.contains(&term) {
                continue;
            }
            match self.postings.get(term.as_str()) {
                Some(list) => self.accumulate(list, 1.0, &mut scores),
                None if term.len() >= MIN_PREFIX => {
                    let start = self.sorted_terms.partition_point(|t| **t < *term);
                    for t in self.sorted_terms[start..]
                        .iter()
                        .take_while(|t| t.starts_with(term.as_str()))
                        .take(MAX_EXPANSION)
                    {
                        if let Some(list) = self.postings.get(t) {
                            self.accumulate(list, PREFIX_WEIGHT, &mut scores);
                        }
                    }
                }
                None => {}
            }
            seen.push(term);
        }
        let mut hits: Vec<(usize, f32)> = scores
            .into_iter()
            .enumerate()
            .filter(|&(doc, s)| s > 0.0 && visible(doc))
            .collect();
        let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if hits.len() > limit {
            hits.select_nth_unstable_by(limit - 1, by_score);
            hits.truncate(limit);
        }
        hits.sort_unstable_by(by_score);
        hits.into_iter().map(|(doc, _)| doc).collect()
    }

    fn accumulate(&self, list: &[(u32, f32)], weight: f32, scores: &mut [f32]) {
        let df = list.len() as f32;
        let idf = (1.0 + (self.docs as f32 - df + 0.5) / (df + 0.5)).ln();
        for &(doc, w) in list {
            scores[doc as usize] += weight * idf * w;
        }
    }
}

/// Lower-cased, stemmed words of `text`: split at anything not a letter or digit and at
/// camelCase humps (`createIssue`, `github__create_issue` → `create`, `issue`), stop words
/// dropped.
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && prev_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = c.is_lowercase() || c.is_numeric();
            word.extend(c.to_lowercase());
        } else {
            prev_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
}

/// A light English stemmer: plural and verb endings, so `issues`, `listing` and `listed` meet
/// `issue` and `list`. Deliberately conservative; words of four letters or fewer are kept.
fn stem(w: &str) -> String {
    if w.len() <= 4 || !w.is_ascii() {
        return w.to_owned();
    }
    for (suffix, replacement) in [
        ("ies", "y"),
        ("sses", "ss"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("xes", "x"),
        ("ing", ""),
        ("ed", ""),
    ] {
        if let Some(base) = w.strip_suffix(suffix)
            && base.len() >= 3
        {
            let mut out = base.to_owned();
            out.push_str(replacement);
            // `creating` → `creat` and `created` → `creat`: drop a final `e` everywhere so
            // `create` meets them.
            return trim_e(out);
        }
    }
    if let Some(base) = w.strip_suffix('s')
        && !base.ends_with('s')
        && !base.ends_with('u')
        && !base.ends_with('i')
    {
        return trim_e(base.to_owned());
    }
    trim_e(w.to_owned())
}

fn trim_e(mut w: String) -> String {
    if w.len() > 4 && w.ends_with('e') {
        w.pop();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, description: &str, params: &[&str]) -> Value {
        let props: serde_json::Map<String, Value> = params
            .iter()
            .map(|p| ((*p).to_owned(), json!({"type": "string"})))
            .collect();
        json!({"name": name, "description": description, "inputSchema": {"type": "object", "properties": props}})
    }

    #[test]
    fn tokens_split_names_and_stem_endings() {
        let t: Vec<String> =
            tokens("github__createIssue lists the Issues, creating 2 files").collect();
        assert_eq!(
            t,
            [
                "github", "creat", "issu", "list", "issu", "creat", "2", "file"
            ]
        );
        assert_eq!(stem("queries"), "query");
        assert_eq!(stem("status"), "status");
        assert_eq!(stem("address"), "address");
        assert_eq!(stem("send"), "send");
    }

    #[test]
    fn the_name_outranks_a_mention_and_visibility_filters() {
        let tools = [
            tool(
                "github__create_issue",
                "Open a new issue in a repository.",
                &["repo", "title"],
            ),
            tool(
                "github__list_issues",
                "List issues of a repository.",
                &["repo", "state"],
            ),
            tool(
                "files__read",
                "Read a file. Useful before you create an issue.",
                &["path"],
            ),
            tool(
                "slack__send_message",
                "Post a message to a channel.",
                &["channel", "text"],
            ),
        ];
        let index = SearchIndex::build(&tools);
        let all = |_| true;
        assert_eq!(index.search("create an issue", 2, all)[0], 0);
        assert_eq!(index.search("show the issues", 1, all), [1]);
        assert_eq!(index.search("post to a slack channel", 5, all)[0], 3);
        assert_eq!(
            index.search("mess", 5, all),
            [3],
            "a prefix finds the word it begins"
        );
        assert!(index.search("zebra", 5, all).is_empty());
        let mut visible = index.search("create an issue", 5, all);
        visible.retain(|&d| d != 0);
        assert_eq!(index.search("create an issue", 5, |d| d != 0), visible);
        assert!(index.search("issue", 0, all).is_empty());
        assert!(SearchIndex::build(&[]).search("issue", 5, all).is_empty());
    }
}

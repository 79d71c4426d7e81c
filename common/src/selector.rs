//! Tag selectors: which executors may run a job.
//!
//! Executors advertise tags (`--tag role=web --tag region=eu`); a job's
//! `target.selector` says which tag sets it accepts. The grammar is Kubernetes' label
//! selector, which many operators already know:
//!
//! ```text
//! selector = "" | term { "," term }
//! term     = key "=" value | key "==" value | key "!=" value
//!          | key "in" "(" value { "," value } ")" | key "notin" "(" value { "," value } ")"
//!          | key | "!" key
//! key, value = [A-Za-z0-9._/-]+
//! ```
//!
//! Terms are ANDed; a comma inside parentheses separates the values of an `in` list;
//! whitespace around tokens is ignored. The empty selector matches every executor.
//! As in Kubernetes, `k!=v` and `k notin (…)` also match executors that have no tag
//! `k` at all (they exclude, they do not require).
//!
//! Invariants: a parsed selector has at least one value in every list, and its
//! [`Display`](fmt::Display) form is canonical (no spaces except around `in`/`notin`,
//! `==` written `=`, list values sorted and deduplicated) and parses back to an equal
//! selector.
//!
//! Deliberately not here: set-based comparison (`>`/`<`), regular expressions, OR
//! between terms, and choosing among matching executors (that is the target
//! strategy's job, in the scheduler).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// A parsed tag selector: the conditions an executor's tags must all meet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    terms: Vec<Term>,
}

/// One condition of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// `k=v` / `k==v`: the tag is present with exactly this value.
    Equals { key: String, value: String },
    /// `k!=v`: the tag is absent or has another value.
    NotEquals { key: String, value: String },
    /// `k in (a,b)`: the tag is present with one of these values.
    In {
        key: String,
        values: BTreeSet<String>,
    },
    /// `k notin (a,b)`: the tag is absent or has none of these values.
    NotIn {
        key: String,
        values: BTreeSet<String>,
    },
    /// `k`: the tag is present, whatever its value.
    Exists { key: String },
    /// `!k`: the tag is absent.
    Absent { key: String },
}

impl Selector {
    /// Parses a selector; the error is a human reason naming the offending term.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(Selector { terms });
        }
        for term in split_terms(s)? {
            terms.push(parse_term(term)?);
        }
        Ok(Selector { terms })
    }

    /// Whether an executor with these tags is acceptable.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|term| term.matches(tags))
    }

    /// True for the selector that matches every executor.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The conditions, in the order written (for display and indexing).
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }
}

impl Term {
    /// Whether these tags meet this one condition.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match self {
            Term::Equals { key, value } => tags.get(key) == Some(value),
            Term::NotEquals { key, value } => tags.get(key) != Some(value),
            Term::In { key, values } => tags.get(key).is_some_and(|v| values.contains(v)),
            Term::NotIn { key, values } => !tags.get(key).is_some_and(|v| values.contains(v)),
            Term::Exists { key } => tags.contains_key(key),
            Term::Absent { key } => !tags.contains_key(key),
        }
    }

    /// The tag key the condition is about.
    pub fn key(&self) -> &str {
        match self {
            Term::Equals { key, .. }
            | Term::NotEquals { key, .. }
            | Term::In { key, .. }
            | Term::NotIn { key, .. }
            | Term::Exists { key }
            | Term::Absent { key } => key,
        }
    }
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Selector::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{term}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |values: &BTreeSet<String>| values.iter().cloned().collect::<Vec<_>>().join(",");
        match self {
            Term::Equals { key, value } => write!(f, "{key}={value}"),
            Term::NotEquals { key, value } => write!(f, "{key}!={value}"),
            Term::In { key, values } => write!(f, "{key} in ({})", list(values)),
            Term::NotIn { key, values } => write!(f, "{key} notin ({})", list(values)),
            Term::Exists { key } => write!(f, "{key}"),
            Term::Absent { key } => write!(f, "!{key}"),
        }
    }
}

/// Parses an executor's `--tag KEY=VALUE` into its key and value, with the same
/// character rules as selectors so that every tag can be selected.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("tag {s:?} is not KEY=VALUE"));
    };
    let (key, value) = (key.trim(), value.trim());
    check_word(key, "key", s)?;
    check_word(value, "value", s)?;
    Ok((key.to_string(), value.to_string()))
}

/// Whether `c` may appear in a key or a value.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')
}

fn check_word(word: &str, what: &str, context: &str) -> Result<(), String> {
    if word.is_empty() {
        return Err(format!("{context:?} has an empty {what}"));
    }
    if let Some(bad) = word.chars().find(|c| !is_word_char(*c)) {
        return Err(format!(
            "{what} {word:?} in {context:?} contains {bad:?}; keys and values use letters, \
             digits, '.', '_', '/' and '-'"
        ));
    }
    Ok(())
}

/// Splits at commas outside parentheses, checking the parentheses pair up.
fn split_terms(s: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' if depth > 0 => return Err(format!("{s:?} has nested parentheses")),
            '(' => depth += 1,
            ')' if depth == 0 => return Err(format!("{s:?} has a ')' without a '('")),
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(format!("{s:?} has a '(' that is not closed"));
    }
    terms.push(&s[start..]);
    Ok(terms)
}

fn parse_term(raw: &str) -> Result<Term, String> {
    let term = raw.trim();
    if term.is_empty() {
        return Err(
            "a selector term is empty (two commas in a row, or a comma at an end)".to_string(),
        );
    }

    if let Some(rest) = term.strip_prefix('!') {
        let key = rest.trim();
        check_word(key, "key", term)?;
        return Ok(Term::Absent {
            key: key.to_string(),
        });
    }

    let key_end = term.find(|c| !is_word_char(c)).unwrap_or(term.len());
    let key = &term[..key_end];
    if key.is_empty() {
        return Err(format!("{term:?} does not start with a tag key"));
    }
    let key = key.to_string();
    let rest = term[key_end..].trim_start();

    if rest.is_empty() {
        return Ok(Term::Exists { key });
    }
    if let Some(value) = rest.strip_prefix("!=") {
        let value = value.trim();
        check_word(value, "value", term)?;
        return Ok(Term::NotEquals {
            key,
            value: value.to_string(),
        });
    }
    if let Some(value) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        let value = value.trim();
        check_word(value, "value", term)?;
        return Ok(Term::Equals {
            key,
            value: value.to_string(),
        });
    }
    // `in` and `notin` must be separated from the key by whitespace (they are word
    // characters themselves), which `rest` having been trimmed shows.
    if key_end < term.len() && term[key_end..].starts_with(char::is_whitespace) {
        for (op, negated) in [("notin", true), ("in", false)] {
            if let Some(list) = rest.strip_prefix(op) {
                let list = list.trim_start();
                if !list.starts_with('(') {
                    continue;
                }
                let values = parse_list(list, term)?;
                return Ok(if negated {
                    Term::NotIn { key, values }
                } else {
                    Term::In { key, values }
                });
            }
        }
    }
    Err(format!(
        "{term:?} is not a selector term (expected k=v, k!=v, k in (a,b), k notin (a,b), k or !k)"
    ))
}

/// `(a, b, c)` with nothing after the closing parenthesis.
fn parse_list(list: &str, term: &str) -> Result<BTreeSet<String>, String> {
    let inner = list
        .strip_prefix('(')
        .and_then(|l| l.trim_end().strip_suffix(')'))
        .ok_or_else(|| format!("{term:?} has text after its ')'"))?;
    if inner.trim().is_empty() {
        return Err(format!("{term:?} has an empty list"));
    }
    let mut values = BTreeSet::new();
    for value in inner.split(',') {
        let value = value.trim();
        check_word(value, "value", term)?;
        values.insert(value.to_string());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn empty_selector_matches_everything() {
        for s in ["", "   "] {
            let selector = sel(s);
            assert!(selector.is_empty());
            assert!(selector.matches(&tags(&[])));
            assert!(selector.matches(&tags(&[("role", "web")])));
            assert_eq!(selector.to_string(), "");
        }
    }

    #[test]
    fn equality_terms() {
        let web = tags(&[("role", "web")]);
        let db = tags(&[("role", "db")]);
        let none = tags(&[]);
        for s in ["role=web", "role==web", " role = web "] {
            let selector = sel(s);
            assert!(selector.matches(&web), "{s}");
            assert!(!selector.matches(&db), "{s}");
            assert!(!selector.matches(&none), "{s}");
        }
        let not_web = sel("role!=web");
        assert!(!not_web.matches(&web));
        assert!(not_web.matches(&db));
        assert!(not_web.matches(&none), "!= also matches an absent key");
    }

    #[test]
    fn set_terms() {
        let eu = tags(&[("region", "eu")]);
        let ap = tags(&[("region", "ap")]);
        let none = tags(&[]);
        let within = sel("region in (eu, us)");
        assert!(within.matches(&eu));
        assert!(!within.matches(&ap));
        assert!(!within.matches(&none));
        let outside = sel("region notin (eu,us)");
        assert!(!outside.matches(&eu));
        assert!(outside.matches(&ap));
        assert!(outside.matches(&none), "notin also matches an absent key");
        assert_eq!(sel("region in(eu)").to_string(), "region in (eu)");
    }

    #[test]
    fn existence_terms() {
        let canary = tags(&[("canary", "true")]);
        let plain = tags(&[("role", "web")]);
        assert!(sel("canary").matches(&canary));
        assert!(!sel("canary").matches(&plain));
        assert!(!sel("!canary").matches(&canary));
        assert!(sel("! canary").matches(&plain));
    }

    #[test]
    fn terms_are_anded() {
        let selector = sel("role=web,region in (eu,us),!canary");
        assert_eq!(selector.terms().len(), 3);
        assert!(selector.matches(&tags(&[("role", "web"), ("region", "us")])));
        assert!(!selector.matches(&tags(&[("role", "web"), ("region", "ap")])));
        assert!(!selector.matches(&tags(&[("role", "web"), ("region", "eu"), ("canary", "1")])));
        assert!(!selector.matches(&tags(&[("region", "eu")])));
    }

    #[test]
    fn keys_and_values_allow_dots_slashes_dashes() {
        let selector = sel("kairos.io/zone=eu-west_1.a");
        assert!(selector.matches(&tags(&[("kairos.io/zone", "eu-west_1.a")])));
        assert_eq!(selector.terms()[0].key(), "kairos.io/zone");
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        let cases = [
            ("role == web", "role=web"),
            (" role!= web ,  !canary", "role!=web,!canary"),
            ("region in ( us ,eu, us )", "region in (eu,us)"),
            ("region notin (b,a)", "region notin (a,b)"),
            ("gpu", "gpu"),
            ("in in (in)", "in in (in)"),
        ];
        for (input, canonical) in cases {
            let selector = sel(input);
            assert_eq!(selector.to_string(), canonical, "{input}");
            assert_eq!(sel(canonical), selector, "{input}");
            assert_eq!(sel(&selector.to_string()).to_string(), canonical);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("role=", "empty value"),
            ("=web", "does not start with a tag key"),
            ("role=web,", "term is empty"),
            ("role=web,,gpu", "term is empty"),
            ("role=we b", "contains ' '"),
            ("role=w$b", "contains '$'"),
            ("!", "empty key"),
            ("!role=web", "contains '='"),
            ("region in (eu", "not closed"),
            ("region in eu)", "without a '('"),
            ("region in ((eu))", "nested"),
            ("region in ()", "empty list"),
            ("region in (eu,)", "empty value"),
            ("region in (eu) x", "text after its ')'"),
            ("region within (eu)", "not a selector term"),
            ("region > 3", "not a selector term"),
            ("regionin (eu)", "not a selector term"),
        ];
        for (input, expected) in cases {
            let err = Selector::parse(input).unwrap_err();
            assert!(err.contains(expected), "{input:?}: {err}");
        }
    }

    #[test]
    fn tags_parse_as_key_value() {
        assert_eq!(
            parse_tag("role=web"),
            Ok(("role".to_string(), "web".to_string()))
        );
        assert_eq!(
            parse_tag(" zone = eu-1 "),
            Ok(("zone".to_string(), "eu-1".to_string()))
        );
        for (input, expected) in [
            ("role", "not KEY=VALUE"),
            ("=web", "empty key"),
            ("role=", "empty value"),
            ("ro le=web", "contains ' '"),
            ("role=a=b", "contains '='"),
        ] {
            let err = parse_tag(input).unwrap_err();
            assert!(err.contains(expected), "{input:?}: {err}");
        }
    }
}

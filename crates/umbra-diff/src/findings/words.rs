//! A finding's one-line summary, in words a reviewer acts on:
//! "1 in 25 `GET /orders/{id}` answers 500 instead of 200",
//! "`/balance` turned from a number into a string on every `GET /users/{id}`",
//! "`/currency` removed on 96 % of `GET /orders/{id}`".

use crate::model::DiffKind;

use super::cause::{Cause, JsonType};

/// Most related causes named in a merged finding's summary; the rest are counted.
const NAMED_RELATED: usize = 2;

/// How often, as words: "every", "1 in 25" (rates up to 10 %), "96 % of".
struct Frequency {
    text: String,
    /// Whether the noun after it is singular ("every answer" vs "96 % of answers").
    singular: bool,
}

fn frequency(count: u64, total: u64) -> Frequency {
    if count >= total {
        return Frequency {
            text: "every".to_owned(),
            singular: true,
        };
    }
    if count * 10 <= total {
        let one_in = (total as f64 / count.max(1) as f64).round() as u64;
        return Frequency {
            text: format!("1 in {one_in}"),
            singular: true,
        };
    }
    let percent = ((count * 100) as f64 / total as f64).round().min(99.0) as u64;
    Frequency {
        text: format!("{percent} % of"),
        singular: false,
    }
}

/// A field key in backticks; the empty pointer is "the body".
fn field(key: &str) -> String {
    if key.is_empty() {
        "the body".to_owned()
    } else {
        format!("`{key}`")
    }
}

fn a_type(t: JsonType) -> String {
    match t {
        JsonType::Null => "null".to_owned(),
        JsonType::Array | JsonType::Object => format!("an {}", t.name()),
        _ => format!("a {}", t.name()),
    }
}

/// What a cause did, without how often: "`/currency` removed".
pub(crate) fn phrase(cause: &Cause) -> String {
    match cause {
        Cause::ShadowError => "no answer from the candidate".to_owned(),
        Cause::Status { primary, candidate } => format!("status {candidate} instead of {primary}"),
        Cause::Order { key } => format!("{} in another order", field(key)),
        Cause::Field { key, kind, types } => field_phrase(key, *kind, *types),
    }
}

fn field_phrase(key: &str, kind: DiffKind, types: Option<(JsonType, JsonType)>) -> String {
    let f = field(key);
    match kind {
        DiffKind::Removed => format!("{f} removed"),
        DiffKind::Added => format!("{f} added"),
        DiffKind::Type => match types {
            Some((a, b)) => format!("{f} turned from {} into {}", a_type(a), a_type(b)),
            None => format!("{f} changed type"),
        },
        DiffKind::Changed => format!("{f} changed value"),
        DiffKind::Length => format!("{f} changed length"),
        DiffKind::Header => {
            let name = key.strip_prefix("header:").unwrap_or(key);
            format!("header `{name}` differs")
        }
        DiffKind::Text => "the body text differs".to_owned(),
        DiffKind::Status => "the status differs".to_owned(),
    }
}

/// The summary of a finding led by `lead`, with the phrases of the causes merged into it.
pub(crate) fn summary(
    lead: &Cause,
    related: &[&Cause],
    count: u64,
    total: u64,
    endpoint: &str,
) -> String {
    let freq = frequency(count, total);
    let main = match lead {
        Cause::Status { primary, candidate } => {
            let verb = if freq.singular { "answers" } else { "answer" };
            format!(
                "{} `{endpoint}` {verb} {candidate} instead of {primary}",
                freq.text
            )
        }
        Cause::ShadowError => format!("the candidate gave no answer on {} `{endpoint}`", freq.text),
        _ => format!("{} on {} `{endpoint}`", phrase(lead), freq.text),
    };
    capitalize(main) + &together_with(related)
}

fn together_with(related: &[&Cause]) -> String {
    if related.is_empty() {
        return String::new();
    }
    let named: Vec<String> = related
        .iter()
        .take(NAMED_RELATED)
        .map(|c| phrase(c))
        .collect();
    let rest = related.len().saturating_sub(NAMED_RELATED);
    let mut out = format!(", together with {}", named.join(", "));
    if rest > 0 {
        let s = if rest == 1 { "" } else { "s" };
        out.push_str(&format!(" and {rest} more difference{s}"));
    }
    out
}

/// Upper-cases the first letter when the sentence starts with a word ("Every …", "The …").
fn capitalize(s: String) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() => c.to_ascii_uppercase().to_string() + chars.as_str(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_cause(key: &str, kind: DiffKind, types: Option<(JsonType, JsonType)>) -> Cause {
        Cause::Field {
            key: key.into(),
            kind,
            types,
        }
    }

    #[test]
    fn frequencies_in_words() {
        let f = |c, t| frequency(c, t).text;
        assert_eq!(f(25, 25), "every");
        assert_eq!(f(1, 25), "1 in 25");
        assert_eq!(f(2, 50), "1 in 25");
        assert_eq!(f(1, 10), "1 in 10");
        assert_eq!(f(48, 50), "96 % of");
        assert_eq!(f(999, 1000), "99 % of", "never rounds up to 100 %");
        assert_eq!(f(3, 7), "43 % of");
    }

    #[test]
    fn summaries_read_as_sentences() {
        let status = Cause::Status {
            primary: 200,
            candidate: 500,
        };
        assert_eq!(
            summary(&status, &[], 1, 25, "GET /orders/{id}"),
            "1 in 25 `GET /orders/{id}` answers 500 instead of 200"
        );
        assert_eq!(
            summary(&status, &[], 48, 50, "GET /o"),
            "96 % of `GET /o` answer 500 instead of 200"
        );
        assert_eq!(
            summary(&status, &[], 5, 5, "GET /o"),
            "Every `GET /o` answers 500 instead of 200"
        );
        let balance = field_cause(
            "/balance",
            DiffKind::Type,
            Some((JsonType::Number, JsonType::String)),
        );
        assert_eq!(
            summary(&balance, &[], 30, 30, "GET /users/{id}"),
            "`/balance` turned from a number into a string on every `GET /users/{id}`"
        );
        let currency = field_cause("/currency", DiffKind::Removed, None);
        assert_eq!(
            summary(&currency, &[], 48, 50, "GET /orders/{id}"),
            "`/currency` removed on 96 % of `GET /orders/{id}`"
        );
        assert_eq!(
            summary(&Cause::ShadowError, &[], 1, 4, "GET /x"),
            "The candidate gave no answer on 25 % of `GET /x`"
        );
    }

    #[test]
    fn merged_findings_name_a_few_related_causes() {
        let lead = field_cause("/a", DiffKind::Removed, None);
        let b = field_cause("/b", DiffKind::Added, None);
        let h = field_cause("header:x-v", DiffKind::Header, None);
        let t = field_cause(
            "",
            DiffKind::Type,
            Some((JsonType::Object, JsonType::Array)),
        );
        let o = Cause::Order {
            key: "/tags".into(),
        };
        assert_eq!(
            summary(&lead, &[&b], 2, 2, "GET /"),
            "`/a` removed on every `GET /`, together with `/b` added"
        );
        assert_eq!(
            summary(&lead, &[&b, &h, &t], 2, 2, "GET /"),
            "`/a` removed on every `GET /`, together with `/b` added, header `x-v` differs \
             and 1 more difference"
        );
        assert_eq!(phrase(&t), "the body turned from an object into an array");
        assert_eq!(phrase(&o), "`/tags` in another order");
    }
}

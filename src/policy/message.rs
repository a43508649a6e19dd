//! The webhook's messages as CEL string expressions. A message is made by
//! the same `Display` as the webhook's, with placeholders where the pod's
//! values go, and the placeholders are then replaced by CEL: the words are
//! written once, in `crate::inject::InjectError`.

use super::cel;
use crate::inject::SHOWN_CHARS;

/// A name no pod, model or engine has, marking where a value of the pod
/// goes in a message rendered to be templated.
pub const MARK: &str = "LLMINJECTORMARK";

/// A CEL expression that quotes the string `expression` as `{:?}` quotes
/// ordinary text (no quote, backslash or control character in it).
pub fn quoted(expression: &str) -> String {
    format!(r#"("\"" + {expression} + "\"")"#)
}

/// A CEL expression that quotes the string `expression` as `shown` does
/// (`{:?}`, cut after the same length): exact for the values the apiserver
/// has validated by the time a validating policy runs (names, label values:
/// no quote, backslash or control character in them).
pub fn shown(expression: &str) -> String {
    format!(
        "(size({e}) <= {n} ? \"\\\"\" + {e} + \"\\\"\" : \"\\\"\" + {e}.substring(0, {n}) + \"\\\"... (\" + string(size({e})) + \" bytes)\")",
        e = expression,
        n = SHOWN_CHARS
    )
}

/// `text` as a CEL string expression, each hole's written form replaced by
/// its expression (a string expression); where two start at one place, the
/// longer is taken.
pub fn template<W: AsRef<str>, E: AsRef<str>>(text: &str, holes: &[(W, E)]) -> String {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let next = holes
            .iter()
            .filter_map(|(written, expression)| {
                let (written, expression) = (written.as_ref(), expression.as_ref());
                rest.find(written).map(|at| (at, written, expression))
            })
            .min_by_key(|(at, written, _)| (*at, std::cmp::Reverse(written.len())));
        let Some((at, written, expression)) = next else {
            break;
        };
        if at > 0 {
            parts.push(cel::string(&rest[..at]));
        }
        parts.push(expression.to_owned());
        rest = &rest[at + written.len()..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(cel::string(rest));
    }
    parts.join(" + ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_table() {
        type Holes<'a> = &'a [(&'a str, &'a str)];
        let cases: [(&str, Holes, &str); 5] = [
            ("plain", &[], r#""plain""#),
            ("", &[], r#""""#),
            ("a X b", &[("X", "x")], r#""a " + x + " b""#),
            ("X", &[("X", "x")], "x"),
            (
                "Y then X and X",
                &[("X", "x"), ("Y", "y")],
                r#"y + " then " + x + " and " + x"#,
            ),
        ];
        for (text, holes, expected) in cases {
            assert_eq!(template(text, holes), expected, "{text}");
        }
    }

    #[test]
    fn shown_quotes_in_cel() {
        assert_eq!(
            shown("c.name"),
            r#"(size(c.name) <= 80 ? "\"" + c.name + "\"" : "\"" + c.name.substring(0, 80) + "\"... (" + string(size(c.name)) + " bytes)")"#
        );
    }
}

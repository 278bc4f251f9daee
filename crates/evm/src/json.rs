//! JSON numbers of any size, as trading bots send them (`"value": 100000000000000000000`).
//! `serde_json` would read an integer above `u64::MAX` as a lossy float; before parsing, such
//! integers are rewritten as decimal strings, which every quantity field accepts. Only the
//! bytes of numbers outside strings change; everything else is copied as it is.

use std::borrow::Cow;

/// `body` with every integer literal larger than `u64::MAX` quoted. Negative numbers, fractions
/// and exponents are left alone (the parsers refuse them where a quantity is expected).
pub fn quote_big_integers(body: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut escaped = false;
    // Open containers, and the last significant byte outside strings: a number is quoted only
    // where a value may stand (the start, after `:`, after `[`, or after `,` in an array), never
    // where an object key must be, so what was not JSON stays not JSON.
    let mut stack: Vec<u8> = Vec::new();
    let mut prev: Option<u8> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < body.len() {
        let b = body[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                prev = Some(b'"');
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let mut j = i + 1;
                while j < body.len()
                    && matches!(body[j], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    j += 1;
                }
                let lit = &body[start..j];
                // Digits only, and no leading zero (`0123…` is not JSON and must stay not JSON).
                let plain =
                    lit.iter().all(u8::is_ascii_digit) && !(lit.len() > 1 && lit[0] == b'0');
                let value_position = match prev {
                    None | Some(b':') | Some(b'[') => true,
                    Some(b',') => stack.last() == Some(&b'['),
                    _ => false,
                };
                let big = plain
                    && value_position
                    && std::str::from_utf8(lit)
                        .ok()
                        .is_some_and(|s| s.parse::<u64>().is_err());
                if big {
                    let o = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 16));
                    o.extend_from_slice(&body[copied..start]);
                    o.push(b'"');
                    o.extend_from_slice(lit);
                    o.push(b'"');
                    copied = j;
                }
                prev = Some(b'0');
                i = j;
            }
            _ => {
                match b {
                    b'{' | b'[' => stack.push(b),
                    b'}' | b']' => {
                        stack.pop();
                    }
                    _ => {}
                }
                if !b.is_ascii_whitespace() {
                    prev = Some(b);
                }
                i += 1;
            }
        }
    }
    match out {
        None => Cow::Borrowed(body),
        Some(mut o) => {
            o.extend_from_slice(&body[copied..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> String {
        String::from_utf8(quote_big_integers(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn only_integers_beyond_u64_are_quoted() {
        assert_eq!(
            q(r#"{"value":100000000000000000000,"gas":21000}"#),
            r#"{"value":"100000000000000000000","gas":21000}"#
        );
        assert_eq!(q("[18446744073709551615]"), "[18446744073709551615]");
        assert_eq!(q("[18446744073709551616]"), r#"["18446744073709551616"]"#);
        // Inside strings (escaped quotes too), fractions, exponents and negatives: untouched.
        let s = r#"{"a":"99999999999999999999\"99999999999999999999","b":1e30,"c":-99999999999999999999,"d":1.5}"#;
        assert_eq!(q(s), s);
        let big = format!("[{}]", "9".repeat(100));
        assert_eq!(q(&big), format!("[\"{}\"]", "9".repeat(100)));
        // The result still parses, and the value survives exactly.
        let v: serde_json::Value = serde_json::from_slice(&quote_big_integers(
            br#"{"value": 340282366920938463463374607431768211455}"#,
        ))
        .unwrap();
        assert_eq!(v["value"], "340282366920938463463374607431768211455");
        assert!(matches!(quote_big_integers(b"{\"x\":1}"), Cow::Borrowed(_)));
        // A leading zero is not JSON, before or after.
        let bad = format!("[0{}]", "1".repeat(30));
        assert_eq!(q(&bad), bad);
        // Where an object key must be, a number is never quoted (that would make it JSON).
        let key = format!("{{{}:1}}", "9".repeat(30));
        assert_eq!(q(&key), key);
        let key = format!("{{\"a\":1,{}:1}}", "9".repeat(30));
        assert_eq!(q(&key), key);
        // After a comma in an array, it is a value.
        let arr = format!("[1,{}]", "9".repeat(30));
        assert_eq!(q(&arr), format!("[1,\"{}\"]", "9".repeat(30)));
    }
}

//! The server's config file (`--config`, crates/cli/src/config.rs, a binary crate): the TOML
//! parse it makes, `toml::from_str::<toml::Table>`, and on failure the error text it prints,
//! `signward_policy::toml_error`. Property checked: **errors never echo content**. The error
//! string must not contain any run of 8 or more bytes copied from inside a double-quoted
//! (basic) string of the input (a config file may hold a database password).
//!
//! Static message text (toml's own words such as "invalid basic string") could match quoted
//! input by chance, so a match is confirmed differentially: every ASCII letter and digit inside
//! the basic strings (escape sequences excepted) is rotated (a→b, z→a, 0→1, 9→0) and the input
//! parsed again. The structure, and so the error, stays the same; an echoed run then appears
//! rotated in the second error, while static text does not change.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;

const RUN: usize = 8;

/// Byte ranges of the contents of double-quoted strings (basic and multi-line basic), and the
/// positions inside them that belong to escape sequences. Comments and literal ('…') strings
/// are skipped. An unterminated string runs to the end of its line (or of the input).
fn basic_strings(b: &[u8]) -> (Vec<std::ops::Range<usize>>, Vec<bool>) {
    let mut regions = Vec::new();
    let mut escape = vec![false; b.len()];
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"\"\"\"") || rest.starts_with(b"\"") {
            let multi = rest.starts_with(b"\"\"\"");
            let start = i + if multi { 3 } else { 1 };
            let mut j = start;
            while j < b.len() {
                if b[j] == b'\\' {
                    // \uXXXX, \UXXXXXXXX, \xHH keep their digits: rotating them could make an
                    // invalid code point and change the error.
                    let n = match b.get(j + 1) {
                        Some(b'u') => 6,
                        Some(b'U') => 10,
                        Some(b'x') => 4,
                        _ => 2,
                    };
                    for e in escape.iter_mut().skip(j).take(n) {
                        *e = true;
                    }
                    j += n;
                    continue;
                }
                if multi && b[j..].starts_with(b"\"\"\"") {
                    break;
                }
                if !multi && (b[j] == b'"' || b[j] == b'\n') {
                    break;
                }
                j += 1;
            }
            let end = j.min(b.len());
            regions.push(start.min(end)..end);
            i = end + if multi { 3 } else { 1 };
        } else if rest.starts_with(b"'''") {
            i += 3;
            while i < b.len() && !b[i..].starts_with(b"'''") {
                i += 1;
            }
            i += 3;
        } else if rest.starts_with(b"'") {
            i += 1;
            while i < b.len() && b[i] != b'\'' && b[i] != b'\n' {
                i += 1;
            }
            i += 1;
        } else if rest.starts_with(b"#") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    (regions, escape)
}

fn rotate(c: u8) -> u8 {
    match c {
        b'a'..=b'y' | b'A'..=b'Y' | b'0'..=b'8' => c + 1,
        b'z' => b'a',
        b'Z' => b'A',
        b'9' => b'0',
        other => other,
    }
}

fn error_text(text: &str) -> Option<String> {
    match toml::from_str::<toml::Table>(text) {
        Ok(_) => None,
        Err(e) => Some(signward_policy::toml_error(text, &e)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(err) = error_text(text) else {
        return;
    };
    let (regions, escape) = basic_strings(data);
    // Every run of RUN bytes of the error, to look the input's runs up in.
    let err_runs: HashSet<&[u8]> = err.as_bytes().windows(RUN).collect();
    let mut suspects: Vec<std::ops::Range<usize>> = Vec::new();
    for r in &regions {
        if r.len() < RUN {
            continue;
        }
        for s in r.start..=r.end - RUN {
            let w = &data[s..s + RUN];
            if err_runs.contains(w)
                && (s..s + RUN).any(|k| !escape[k] && rotate(data[k]) != data[k])
            {
                suspects.push(s..s + RUN);
            }
        }
    }
    if suspects.is_empty() {
        return;
    }
    let mut rotated = data.to_vec();
    for r in &regions {
        for k in r.clone() {
            if !escape[k] {
                rotated[k] = rotate(data[k]);
            }
        }
    }
    // Rotating ASCII letters and digits keeps the text UTF-8.
    let rotated_text = std::str::from_utf8(&rotated).expect("rotation keeps UTF-8");
    let Some(err2) = error_text(rotated_text) else {
        return;
    };
    for s in suspects {
        let w2 = &rotated[s.clone()];
        assert!(
            !err2.as_bytes().windows(RUN).any(|x| x == w2),
            "the TOML error echoes quoted input: bytes {s:?} of the input appear in {err:?}"
        );
    }
});
